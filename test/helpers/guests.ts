import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { dataPaths, installed, repoRoot, type Config } from '../../domain/config';
import { consoleTail } from '../../hypervisor/console-log';
import { writeSeed } from '../../hypervisor/nocloud-seed';
import { createOverlay } from '../../hypervisor/qemu-img';
import { QemuHost, type GuestSpec } from '../../hypervisor/qemu-host';
import { localQemuHost } from '../../hypervisor/local-qemu-host';
import { readGuestLog, waitForFreshHeartbeat, type Heartbeat } from '../../hypervisor/serial-log';
import { importImage } from '../../inventory/images';
import type { Inventory } from '../../inventory/db';
import { until } from './until';

const run = promisify(execFile);

export const GUEST_IMAGE = 'debian-busybox';

/** Imports the bootstrap's guest disk, as `npm start` does. */
export function importGuestImage(inv: Inventory, config: Config) {
  return importImage(inv, dataPaths(config.dataDir).images, { name: GUEST_IMAGE, file: installed.guestDisk });
}

/** The QEMU processes of one host, read the way its agent reads them. */
export function qemuOn(config: Config, hostId: string): QemuHost {
  return localQemuHost(config.dataDir, hostId);
}

/**
 * Starts the local test guest on `qemu` without any agent or workflow (an orphan, a leftover
 * canary, a bare boot): its disk and seed in the host's run directory.
 */
export async function startBareGuest(
  qemu: QemuHost,
  vmId: string,
  opts: Partial<GuestSpec> = {},
  userData?: string,
) {
  const disk = path.join(qemu.runDir, `${vmId}.qcow2`);
  await createOverlay(installed.guestDisk, 'qcow2', disk);
  const seedPath = path.join(qemu.runDir, `${vmId}.seed.iso`);
  await writeSeed(seedPath, { instanceId: vmId, hostname: vmId, sshKeys: [], userData });
  return qemu.start({ vmId, memoryMiB: 128, vcpus: 1, firmware: 'bios', disks: [disk], seedPath, ...opts });
}

/** Waits until the guest's console shows `text` (a marker its user-data prints). */
export function waitForConsole(config: Config, hostId: string, vmId: string, text: string): Promise<true> {
  const log = qemuOn(config, hostId).files(vmId).serialLog;
  return until(
    `"${text}" on the console of ${vmId}`,
    async () => consoleTail(log, 65536).includes(text),
    120_000,
  );
}

/** Waits for a heartbeat the guest writes from now on: proof it runs, not that it once ran. */
export function freshHeartbeat(config: Config, hostId: string, vmId: string): Promise<Heartbeat> {
  const log = qemuOn(config, hostId).files(vmId).serialLog;
  return waitForFreshHeartbeat(log, vmId, { offset: readGuestLog(log, vmId).size, timeoutMs: 15_000 });
}

/** Every host on which a QEMU process for `vmId` runs. */
export function hostsRunning(
  config: Config,
  vmId: string,
  hostIds = ['host-a', 'host-b', 'host-c'],
): string[] {
  return hostIds.filter((h) => qemuOn(config, h).find(vmId) !== undefined);
}

/** Runs the real `virtflow` CLI with the test file's environment. */
export async function cli(
  env: NodeJS.ProcessEnv,
  args: string[],
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      [path.join(repoRoot, 'bin', 'virtflow.js'), ...args],
      {
        env,
        cwd: repoRoot,
      },
    );
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}
