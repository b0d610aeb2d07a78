import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { createOverlay, imageInfo, sha256File } from '../hypervisor/qemu-img';
import type { QemuHost } from '../hypervisor/qemu-host';
import { readGuestLog } from '../hypervisor/serial-log';

export interface GuestActivityDeps {
  hostId: string;
  qemu: QemuHost;
  /** The shared datastore as this host mounts it. */
  datastoreDir: string;
}

export interface ImageRef {
  path: string;
  format: string;
  sha256: string;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/** VM lifecycle on this host: disks on the shared datastore and QEMU processes. */
export function createGuestActivities({ hostId, qemu, datastoreDir }: GuestActivityDeps) {
  const diskPathOf = (vmId: string) => path.join(datastoreDir, `${vmId}.qcow2`);

  return {
    /**
     * Creates the VM's disk as a qcow2 overlay of its image, after re-verifying the image's
     * checksum: a corrupted base must never become a VM's disk. Idempotent on retry.
     */
    async prepareDisk(req: { vmId: string; image: ImageRef }): Promise<{ diskPath: string }> {
      const diskPath = diskPathOf(req.vmId);
      const actual = await sha256File(req.image.path).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(
          `image file ${req.image.path} is unreadable: ${err.message}`,
          'ImageChecksumError',
        );
      });
      if (actual !== req.image.sha256) {
        throw ApplicationFailure.nonRetryable(
          `image ${req.image.path} fails its checksum: expected ${req.image.sha256}, found ${actual}`,
          'ImageChecksumError',
        );
      }
      fs.mkdirSync(datastoreDir, { recursive: true });
      if (fs.existsSync(diskPath)) {
        const info = await imageInfo(diskPath);
        if (info.backingFile === req.image.path) return { diskPath };
        throw ApplicationFailure.nonRetryable(
          `disk ${diskPath} already exists and is not this VM's`,
          'InvalidStateError',
        );
      }
      await createOverlay(req.image.path, req.image.format, diskPath);
      return { diskPath };
    },

    /** Starts the guest; a retry finds the guest it already started. */
    async startGuest(req: {
      vmId: string;
      memoryMiB: number;
      vcpus: number;
      diskPath: string;
      bootArgs?: string;
    }) {
      const running = qemu.find(req.vmId);
      if (running) return { pid: running.pid, hostId };
      const guest = await qemu.start({
        vmId: req.vmId,
        memoryMiB: req.memoryMiB,
        vcpus: req.vcpus,
        diskPath: req.diskPath,
        bootArgs: req.bootArgs,
      });
      return { pid: guest.pid, hostId };
    },

    /**
     * Waits for the guest's boot marker and then a heartbeat, heartbeating to Temporal while it
     * waits. Fails at once if QEMU exits: a dead guest will not boot later.
     */
    async waitForGuestBoot(req: { vmId: string; timeoutMs: number }): Promise<{ heartbeatSeq: number }> {
      const ctx = Context.current();
      const log = qemu.files(req.vmId).serialLog;
      const deadline = Date.now() + req.timeoutMs;
      for (;;) {
        const state = readGuestLog(log, req.vmId);
        if (state.booted && state.lastHeartbeat) return { heartbeatSeq: state.lastHeartbeat.seq };
        if (!qemu.find(req.vmId)) {
          throw ApplicationFailure.nonRetryable(
            `guest ${req.vmId} exited before it booted`,
            'GuestBootError',
          );
        }
        if (Date.now() > deadline) {
          throw ApplicationFailure.nonRetryable(
            `guest ${req.vmId} did not boot within ${req.timeoutMs / 1000} s (${state.booted ? 'booted, no heartbeat' : 'no boot marker'})`,
            'GuestBootError',
          );
        }
        ctx.heartbeat({ booted: state.booted });
        await sleep(500, ctx.cancellationSignal);
      }
    },

    /** Stops the guest: power-down, then quit after the grace period, then SIGKILL. */
    async stopGuest(req: { vmId: string; gracefulMs: number }) {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 2000);
      try {
        return { how: await qemu.stop(req.vmId, req.gracefulMs) };
      } finally {
        clearInterval(beat);
      }
    },

    /** Kills the guest outright: compensation for a create that failed. */
    async destroyGuest(req: { vmId: string }): Promise<void> {
      qemu.kill(req.vmId);
    },

    /** Deletes the VM's disk; refuses any path outside the datastore. */
    async deleteDisk(req: { vmId: string }): Promise<{ deleted: boolean }> {
      const diskPath = diskPathOf(req.vmId);
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `disk of ${req.vmId} is in use by a running guest`,
          'InvalidStateError',
        );
      }
      const existed = fs.existsSync(diskPath);
      fs.rmSync(diskPath, { force: true });
      return { deleted: existed };
    },

    /** Whether the guest runs here, as QEMU reports it. */
    async guestStatus(req: {
      vmId: string;
    }): Promise<{ running: boolean; status: string; pid: number | null }> {
      const guest = qemu.find(req.vmId);
      if (!guest) return { running: false, status: 'absent', pid: null };
      const status = await (
        await qemu.monitor(req.vmId)
      )
        .command('query-status', 2000)
        .catch(() => undefined);
      return { running: status?.running ?? false, status: status?.status ?? 'unknown', pid: guest.pid };
    },
  };
}

export type GuestActivities = ReturnType<typeof createGuestActivities>;
