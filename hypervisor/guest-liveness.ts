import { withGuestAgent } from './guest-agent';
import type { QemuHost } from './qemu-host';
import { readGuestLog } from './serial-log';

/** How a guest proved it runs: its agent answered, or (images without one) its console spoke. */
export type LivenessProof = { via: 'guest-agent' } | { via: 'console'; heartbeatSeq: number };

export interface LivenessWait {
  /** The image runs a guest agent; otherwise the console marker and heartbeat are the proof. */
  guestAgent: boolean;
  timeoutMs: number;
  /** Console only: the heartbeat must be newer than this one (a migration's source side). */
  afterSeq?: number | null;
  /** Between tries (default 250 ms); a migration's verification, on its critical path, polls faster. */
  pollMs?: number;
  /** Called between tries with what is missing (activities heartbeat to Temporal here). */
  onWait?: (missing: string) => void;
  signal?: AbortSignal;
}

/** Why a guest did not prove it runs; `exited` when its QEMU is gone (it will not answer later). */
export class GuestNotAliveError extends Error {
  constructor(
    message: string,
    readonly exited: boolean,
  ) {
    super(message);
    this.name = 'GuestNotAliveError';
  }
}

/**
 * Waits until the guest proves it runs now. With an agent that is a `guest-ping` answered in a
 * conversation opened after this call (a fresh sync id, so no earlier reply counts); without
 * one, the console's boot marker and a heartbeat newer than `afterSeq`.
 */
export async function waitForGuestAlive(
  qemu: QemuHost,
  vmId: string,
  wait: LivenessWait,
): Promise<LivenessProof> {
  const deadline = Date.now() + wait.timeoutMs;
  let missing: string;
  for (;;) {
    const guest = qemu.find(vmId);
    if (!guest) throw new GuestNotAliveError(`the QEMU process of ${vmId} exited`, true);
    const left = deadline - Date.now();
    if (wait.guestAgent) {
      try {
        await withGuestAgent(qemu.files(vmId).agentSocket, Math.max(200, Math.min(2000, left)), (agent) =>
          agent.execute('guest-ping', undefined, 2000),
        );
        return { via: 'guest-agent' };
      } catch (err) {
        missing = `the guest agent did not answer (${(err as Error).message})`;
      }
    } else {
      const log = readGuestLog(guest.serialLog, vmId);
      const hb = log.lastHeartbeat;
      if (log.booted && hb && hb.seq > (wait.afterSeq ?? 0)) return { via: 'console', heartbeatSeq: hb.seq };
      missing = log.booted ? `no heartbeat after seq ${wait.afterSeq ?? 0}` : 'no boot marker on the console';
    }
    if (Date.now() >= deadline)
      throw new GuestNotAliveError(
        `${vmId} did not prove it runs within ${wait.timeoutMs / 1000} s: ${missing}`,
        false,
      );
    wait.onWait?.(missing);
    await sleep(wait.pollMs ?? 250, wait.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });
}
