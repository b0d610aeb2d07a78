import fs from 'node:fs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  dataDisksSchema,
  diskBytesSchema,
  guestConfigSchema,
  UEFI_MIN_MEMORY_MIB,
  type GuestConfig,
  type GuestInfo,
} from '../../domain/guest';
import { parseInput, ValidationError } from '../../domain/errors';
import { cannotServe, type NicConfig } from '../../domain/network';
import { ensureVarsStore } from '../../hypervisor/firmware';
import type { GuestNic, HostNetwork } from '../../hypervisor/host-network';
import { readGuestInfo, withGuestAgent } from '../../hypervisor/guest-agent';
import { GuestNotAliveError, waitForGuestAlive } from '../../hypervisor/guest-liveness';
import { removeSeed, writeSeed } from '../../hypervisor/nocloud-seed';
import {
  createImage,
  createOverlay,
  imageInfo,
  imageInUse,
  resizeImage,
  sha256File,
} from '../../hypervisor/qemu-img';
import { formatBytes } from '../../domain/bytes';
import { consoleBytesSchema } from '../../domain/guest';
import { consoleTail } from '../../hypervisor/console-log';
import type { GuestSpec, QemuHost } from '../../hypervisor/qemu-host';
import { dataDiskIndices, insideDir, vmFiles } from '../../hypervisor/vm-files';
import type {
  GuestStartRequest,
  PrepareDiskRequest,
  ResizeDiskRequest,
  Screenshot,
  StopGuestRequest,
  StopOutcome,
  VmRequest,
  WaitForBootRequest,
} from './contract';

export interface GuestActivityDeps {
  hostId: string;
  qemu: QemuHost;
  /** The shared datastore as this host mounts it. */
  datastoreDir: string;
  /** The image repository as this host mounts it: a VM's disk may rest only on an image there. */
  imagesDir: string;
  /** The host's bridges and taps; absent when its agent serves no networks. */
  network?: HostNetwork;
}

/**
 * The spec with the guest's NICs attached: each network's bridge made here, and the tap QEMU
 * opens on it. A host that serves no networks, or lacks a network's uplink, refuses by name.
 */
export async function attachNics(
  deps: Pick<GuestActivityDeps, 'hostId' | 'network'>,
  spec: GuestSpec,
  guest: GuestConfig,
): Promise<GuestSpec> {
  const nics = guest.nics ?? [];
  return nics.length === 0 ? spec : { ...spec, nics: await attachNicsOnHost(deps, nics) };
}

/** Each NIC's network made on this host, or a refusal naming what the host lacks. */
export async function attachNicsOnHost(
  deps: Pick<GuestActivityDeps, 'hostId' | 'network'>,
  nics: NicConfig[],
): Promise<GuestNic[]> {
  const why = nics.map((n) => cannotServe(deps.network?.facts, n)).find((r) => r !== undefined);
  if (why) throw new ValidationError('guest.nics', `${deps.hostId} ${why}`);
  return deps.network!.attach(nics);
}

/**
 * The QEMU spec of a VM on this host, after checking the request as any Temporal client may
 * have written it: the id names the files, the guest settings parse, UEFI has room to boot.
 */
export function guestSpecOf(
  datastoreDir: string,
  req: GuestStartRequest,
): { spec: GuestSpec; guest: GuestConfig } {
  const files = vmFiles(datastoreDir, req.vmId);
  const guest = parseInput(guestConfigSchema, req.guest, 'guest');
  if (guest.firmware === 'uefi' && req.memoryMiB < UEFI_MIN_MEMORY_MIB)
    throw new ValidationError(
      'memoryMiB',
      `${req.memoryMiB} MiB is too little for UEFI firmware (at least ${UEFI_MIN_MEMORY_MIB} MiB)`,
    );
  const spec: GuestSpec = {
    vmId: req.vmId,
    memoryMiB: req.memoryMiB,
    vcpus: req.vcpus,
    firmware: guest.firmware,
    disks: [0, ...dataDiskIndices(guest.dataDisks.length)].map(files.diskOf),
    seedPath: files.seed,
    varsPath: guest.firmware === 'uefi' ? files.vars : undefined,
    cpuModel: guest.cpuModel,
  };
  return { spec, guest };
}

/** A screenshot travels in a Temporal payload (2 MiB at most, base64 adds a third). */
const SCREENSHOT_MAX_BYTES = 1024 * 1024;

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
export function createGuestActivities(deps: GuestActivityDeps) {
  const { hostId, qemu, datastoreDir, imagesDir } = deps;
  const diskPathOf = (vmId: string) => vmFiles(datastoreDir, vmId).disk;

  /** For the calls that ask a running guest something: a valid id, and QEMU running it here. */
  function requireRunningHere(vmId: string): void {
    vmFiles(datastoreDir, vmId);
    if (!qemu.find(vmId))
      throw ApplicationFailure.nonRetryable(`${vmId} does not run on ${hostId}`, 'InvalidStateError');
  }

  /**
   * Makes a VM's empty data disks. A retry finds the ones it made: a file already there must be
   * a standalone qcow2 of the asked size, or it is someone else's and the create stops.
   */
  async function createDataDisks(vmId: string, sizes: number[]): Promise<void> {
    const files = vmFiles(datastoreDir, vmId);
    for (const [i, sizeBytes] of sizes.entries()) {
      const file = files.diskOf(i + 1);
      if (fs.existsSync(file)) {
        const info = await imageInfo(file);
        if (info.backingFile === undefined && info.virtualSizeBytes === sizeBytes) continue;
        throw ApplicationFailure.nonRetryable(
          `data disk ${file} already exists and is not this VM's`,
          'InvalidStateError',
        );
      }
      await createImage(file, sizeBytes);
    }
  }

  return {
    /**
     * Creates the VM's disk as a qcow2 overlay of its image, after re-verifying the image's
     * checksum: a corrupted base must never become a VM's disk. Idempotent on retry.
     */
    async prepareDisk(req: PrepareDiskRequest): Promise<{ diskPath: string }> {
      const diskPath = diskPathOf(req.vmId);
      const dataDisks = parseInput(dataDisksSchema, req.dataDisks ?? [], 'dataDisks');
      const imagePath = insideDir(imagesDir, req.image.path, 'image.path');
      const actual = await sha256File(imagePath).catch((err: Error) => {
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
        if (info.backingFile !== imagePath)
          throw ApplicationFailure.nonRetryable(
            `disk ${diskPath} already exists and is not this VM's`,
            'InvalidStateError',
          );
      }
      // The repository stores only qcow2 (converted at import): never let a request say otherwise.
      else await createOverlay(imagePath, 'qcow2', diskPath, req.sizeBytes);
      await createDataDisks(req.vmId, dataDisks);
      return { diskPath };
    },

    /**
     * Starts the guest from its own disk, with its firmware and its NoCloud seed (rebuilt when
     * its settings changed since the last start). A retry finds the guest it already started.
     */
    async startGuest(req: GuestStartRequest) {
      const { spec, guest } = guestSpecOf(datastoreDir, req);
      const running = qemu.find(req.vmId);
      if (running) return { pid: running.pid, hostId };
      await writeSeed(spec.seedPath, {
        instanceId: req.vmId,
        hostname: req.vmId,
        sshKeys: guest.sshKeys,
        userData: guest.userData,
        nics: guest.nics,
      });
      if (spec.varsPath) ensureVarsStore(spec.varsPath);
      const started = await qemu.start(await attachNics(deps, spec, guest));
      return { pid: started.pid, hostId };
    },

    /**
     * Waits until the guest proves it runs (its agent answers, or for images without one its
     * console marker and a heartbeat), heartbeating to Temporal while it waits. Fails at once
     * if QEMU exits: a dead guest will not boot later.
     */
    async waitForGuestBoot(req: WaitForBootRequest) {
      const ctx = Context.current();
      try {
        const proof = await waitForGuestAlive(qemu, req.vmId, {
          guestAgent: req.guestAgent ?? false,
          timeoutMs: req.timeoutMs,
          onWait: (missing) => ctx.heartbeat({ missing }),
          signal: ctx.cancellationSignal,
        });
        return { heartbeatSeq: proof.via === 'console' ? proof.heartbeatSeq : null, via: proof.via };
      } catch (err) {
        if (!(err instanceof GuestNotAliveError)) throw err;
        throw ApplicationFailure.nonRetryable(
          err.exited
            ? `guest ${req.vmId} exited before it booted`
            : `guest ${req.vmId} did not boot: ${err.message}`,
          'GuestBootError',
        );
      }
    },

    /**
     * Stops the guest within its grace period: its agent is asked first (when it has one) and
     * given half of it, then ACPI power-down for the rest, then `quit`, then SIGKILL.
     */
    async stopGuest(req: StopGuestRequest): Promise<{ how: StopOutcome }> {
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(), 2000);
      const deadline = Date.now() + req.gracefulMs;
      try {
        const guest = qemu.find(req.vmId);
        if (guest && req.guestAgent && req.gracefulMs > 0) {
          const asked = await withGuestAgent(
            qemu.files(req.vmId).agentSocket,
            Math.min(5000, req.gracefulMs),
            async (agent) => agent.requestShutdown(),
          ).then(
            () => true,
            () => false,
          );
          if (asked && (await waitUntilGone(qemu, req.vmId, req.gracefulMs / 2, ctx.cancellationSignal))) {
            await qemu.stop(req.vmId, 0);
            return { how: 'guest-agent' as const };
          }
        }
        return { how: await qemu.stop(req.vmId, Math.max(0, deadline - Date.now())) };
      } finally {
        clearInterval(beat);
      }
    },

    /**
     * Grows the VM's root disk: `block_resize` under a running guest (it sees the new size at
     * once), `qemu-img resize` on a stopped one. Refuses to shrink, naming both sizes.
     */
    async resizeDisk(
      req: ResizeDiskRequest,
    ): Promise<{ previousBytes: number; sizeBytes: number; online: boolean }> {
      const files = vmFiles(datastoreDir, req.vmId);
      const index = req.disk ?? 0;
      const disk = files.diskOf(index);
      parseInput(diskBytesSchema, req.sizeBytes, 'sizeBytes');
      if (!fs.existsSync(disk))
        throw new ValidationError('disk', `vm ${req.vmId} has no disk ${index} on this datastore`);
      const previousBytes = (await imageInfo(disk)).virtualSizeBytes;
      if (req.sizeBytes === previousBytes)
        return { previousBytes, sizeBytes: previousBytes, online: !!qemu.find(req.vmId) };
      if (req.sizeBytes < previousBytes)
        throw new ValidationError(
          'sizeBytes',
          `${formatBytes(req.sizeBytes)} is smaller than the disk of ${req.vmId}, which is ${formatBytes(previousBytes)}: disks only grow`,
        );
      if (qemu.find(req.vmId)) {
        await qemu.growDisk(req.vmId, index, req.sizeBytes);
        return { previousBytes, sizeBytes: req.sizeBytes, online: true };
      }
      await resizeImage(disk, req.sizeBytes);
      return { previousBytes, sizeBytes: req.sizeBytes, online: false };
    },

    /** Hostname, OS and addresses as the guest's agent reports them. */
    async guestInfo(req: { vmId: string }): Promise<GuestInfo> {
      requireRunningHere(req.vmId);
      return readGuestInfo(qemu.files(req.vmId).agentSocket).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(
          `the guest agent of ${req.vmId} did not answer: ${err.message}`,
          'GuestAgentError',
        );
      });
    },

    /**
     * The guest's screen as a PNG (base64), as QEMU's VGA card shows it. Refused above 1 MiB:
     * it travels in a Temporal payload.
     */
    async screenshot(req: VmRequest): Promise<Screenshot> {
      requireRunningHere(req.vmId);
      const png = await qemu.screendump(req.vmId);
      if (png.length > SCREENSHOT_MAX_BYTES)
        throw ApplicationFailure.nonRetryable(
          `the screenshot of ${req.vmId} is ${formatBytes(png.length)}, more than ${formatBytes(SCREENSHOT_MAX_BYTES)}`,
          'ScreenshotTooLargeError',
        );
      // IHDR, the first chunk of every PNG, holds the width and height at bytes 16 and 20.
      return { pngBase64: png.toString('base64'), width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
    },

    /**
     * The end of the guest's console log, as `vm console --log` prints it on the host. Kept
     * after the guest stops (until it starts again), so it tells why a guest went down.
     */
    async consoleLog(req: { vmId: string; bytes: number }): Promise<{ text: string }> {
      vmFiles(datastoreDir, req.vmId);
      const bytes = parseInput(consoleBytesSchema, req.bytes, 'bytes');
      return { text: consoleTail(qemu.files(req.vmId).serialLog, bytes) };
    },

    /** Kills the guest outright: compensation for a create that failed. */
    async destroyGuest(req: { vmId: string }): Promise<void> {
      vmFiles(datastoreDir, req.vmId);
      await qemu.killConfirmed(req.vmId);
    },

    /** Deletes the VM's disks, seed and UEFI variables; every path comes from the VM id. */
    async deleteDisk(req: { vmId: string }): Promise<{ deleted: boolean }> {
      const files = vmFiles(datastoreDir, req.vmId);
      const diskPath = files.disk;
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `disk of ${req.vmId} is in use by a running guest`,
          'InvalidStateError',
        );
      }
      const disks = [diskPath, ...files.allDataDisks()].filter((f) => fs.existsSync(f));
      // A guest on another host (a migration's other end, an unrecorded copy) holds its lock.
      for (const file of disks)
        if (await imageInUse(file))
          throw ApplicationFailure.nonRetryable(
            `disk ${file} of ${req.vmId} is in use by a running guest on another host`,
            'InvalidStateError',
          );
      for (const file of disks) fs.rmSync(file, { force: true });
      fs.rmSync(files.vars, { force: true });
      removeSeed(files.seed);
      return { deleted: disks.includes(diskPath) };
    },

    /** Whether the guest runs here, as QEMU reports it. */
    async guestStatus(req: VmRequest): Promise<{ running: boolean; status: string; pid: number | null }> {
      const guest = qemu.find(req.vmId);
      if (!guest) return { running: false, status: 'absent', pid: null };
      // A QEMU whose monitor another client holds still exists: its state is then `unknown`.
      const status = await qemu
        .monitor(req.vmId)
        .then((qmp) => qmp.command('query-status', 2000))
        .catch(() => undefined);
      return { running: status?.running ?? false, status: status?.status ?? 'unknown', pid: guest.pid };
    },
  };
}

/** Resolves true once the guest's QEMU has exited, false after `timeoutMs`. */
async function waitUntilGone(
  qemu: QemuHost,
  vmId: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (qemu.find(vmId)) {
    if (Date.now() >= deadline) return false;
    await sleep(200, signal);
  }
  return true;
}
