import fs from 'node:fs';

/**
 * The guest speaks to its host only through the serial console, which QEMU writes to a log
 * file: `virtflow-guest-ready vm=<id>` once init runs, then
 * `virtflow-heartbeat vm=<id> seq=<n> uptime=<s>` five times a second.
 */
const READY = /virtflow-guest-ready vm=([a-z0-9-]*)/;
const HEARTBEAT = /virtflow-heartbeat vm=([a-z0-9-]*) seq=(\d+) uptime=([\d.]+)/g;

export interface Heartbeat {
  vmId: string;
  seq: number;
  uptimeSec: number;
}

export interface GuestLogState {
  /** Size of the log when read: a later wait can insist on lines written after it. */
  size: number;
  booted: boolean;
  lastHeartbeat?: Heartbeat;
  /** When the log was last written; heartbeats are the only lines after boot. */
  modifiedAt?: Date;
}

function readFrom(path: string, offset: number): { text: string; size: number; mtime?: Date } {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return { text: '', size: 0 };
  }
  try {
    const stat = fs.fstatSync(fd);
    const start = Math.min(offset, stat.size);
    const buf = Buffer.alloc(stat.size - start);
    fs.readSync(fd, buf, 0, buf.length, start);
    return { text: buf.toString('latin1'), size: stat.size, mtime: stat.mtime };
  } finally {
    fs.closeSync(fd);
  }
}

function lastHeartbeatIn(text: string, vmId: string): Heartbeat | undefined {
  let last: Heartbeat | undefined;
  for (const m of text.matchAll(HEARTBEAT)) {
    if (m[1] === vmId) last = { vmId, seq: Number(m[2]), uptimeSec: Number(m[3]) };
  }
  return last;
}

/** What the guest has said so far. Reads only the tail: the log grows for as long as the VM runs. */
export function readGuestLog(path: string, vmId: string): GuestLogState {
  const head = readFrom(path, 0);
  // The boot marker is near the start; heartbeats are at the end.
  const tail = head.text.length > 8192 ? head.text.slice(-8192) : head.text;
  const ready = READY.exec(head.text.slice(0, 65536));
  const lastHeartbeat = lastHeartbeatIn(tail, vmId);
  return {
    size: head.size,
    // A rotated log (hypervisor/console-log.ts) has lost the marker; heartbeats only follow it.
    booted: ready?.[1] === vmId || lastHeartbeat !== undefined,
    lastHeartbeat,
    modifiedAt: head.mtime,
  };
}

/**
 * Resolves with the first heartbeat of `vmId` written after byte `offset` of the log, so a
 * stale line from before (a previous boot, the source side of a migration) never counts.
 */
export async function waitForFreshHeartbeat(
  path: string,
  vmId: string,
  opts: { offset: number; timeoutMs: number; minSeq?: number; pollMs?: number },
): Promise<Heartbeat> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const { text } = readFrom(path, opts.offset);
    const hb = lastHeartbeatIn(text, vmId);
    if (hb && hb.seq > (opts.minSeq ?? 0)) return hb;
    if (Date.now() >= deadline) {
      throw new Error(`no fresh heartbeat from guest ${vmId} in ${path} within ${opts.timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
}

/** Resolves once the guest has printed its boot marker. */
export async function waitForBootMarker(path: string, vmId: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!readGuestLog(path, vmId).booted) {
    if (Date.now() >= deadline)
      throw new Error(`guest ${vmId} printed no boot marker within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
