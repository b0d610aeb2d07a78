import type { AccelFacts } from '../../hypervisor/accel-probe';
import { readGuestLog } from '../../hypervisor/serial-log';
import { readHostFacts, readHostLoad } from '../../hypervisor/host-facts';
import type { QemuHost } from '../../hypervisor/qemu-host';
import { createBackupActivities, type BackupActivityDeps } from './backup-activities';
import { createGuestActivities, type GuestActivityDeps } from './guest-activities';
import { createMigrationActivities, type MigrationActivityDeps } from './migration-activities';
import { createInspectionActivities } from './inspection-activities';
import { createPatchActivities, type PatchActivityDeps } from './patch-activities';
import type { GuestReport, HostContract, HostReport } from './contract';

export interface HostActivityDeps
  extends GuestActivityDeps, MigrationActivityDeps, BackupActivityDeps, PatchActivityDeps {
  patchLevel: () => string;
  /** The accelerator and CPU models the agent probed at start (hypervisor/accel-probe.ts). */
  accelFacts: AccelFacts;
}

/** What one guest is doing right now, from QMP and its serial log. */
async function reportGuest(
  qemu: QemuHost,
  vmId: string,
  pid: number,
  memoryMiB: number,
): Promise<GuestReport> {
  let status = 'unknown';
  try {
    status = (await (await qemu.monitor(vmId)).command('query-status', 2000)).status;
  } catch {
    // A guest whose monitor does not answer is still reported: the reconciler decides what it means.
  }
  const log = readGuestLog(qemu.files(vmId).serialLog, vmId);
  return {
    vmId,
    pid,
    status,
    memoryMiB,
    booted: log.booted,
    lastHeartbeatSeq: log.lastHeartbeat?.seq ?? null,
    heartbeatAgeSec:
      log.lastHeartbeat && log.modifiedAt ? (Date.now() - log.modifiedAt.getTime()) / 1000 : null,
  };
}

/** Reports everything this host runs, as the hypervisor sees it. */
export async function reportHost(
  deps: Pick<HostActivityDeps, 'hostId' | 'qemu' | 'patchLevel' | 'accelFacts'>,
): Promise<HostReport> {
  const guests = await Promise.all(
    deps.qemu.list().map((g) => reportGuest(deps.qemu, g.vmId, g.pid, g.spec.memoryMiB)),
  );
  return {
    hostId: deps.hostId,
    facts: await readHostFacts(deps.accelFacts),
    patchLevel: deps.patchLevel(),
    load: readHostLoad(),
    guests,
  };
}

/** Activities that run on one host, scheduled on its task queue `host/<hostId>`. */
export function createHostActivities(deps: HostActivityDeps): HostContract {
  return {
    async reportHost(): Promise<HostReport> {
      return reportHost(deps);
    },
    ...createGuestActivities(deps),
    ...createMigrationActivities(deps),
    ...createBackupActivities(deps),
    ...createPatchActivities(deps),
    ...createInspectionActivities(deps),
  };
}
