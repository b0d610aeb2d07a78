import type { AccelFacts } from '../../hypervisor/accel-probe';
import { readGuestLog } from '../../hypervisor/serial-log';
import { readHostFacts, readHostLoad } from '../../hypervisor/host-facts';
import { readGuestAddresses } from '../../hypervisor/guest-agent';
import type { HostNetwork } from '../../hypervisor/host-network';
import type { QemuHost } from '../../hypervisor/qemu-host';
import { createBackupActivities, type BackupActivityDeps } from './backup-activities';
import { createGuestActivities, type GuestActivityDeps } from './guest-activities';
import { createNicActivities } from './nic-activities';
import { createMigrationActivities, type MigrationActivityDeps } from './migration-activities';
import { createInspectionActivities } from './inspection-activities';
import { createPatchActivities, type PatchActivityDeps } from './patch-activities';
import type { GuestReport, HostContract, HostNetworkReport, HostReport, ReportHostRequest } from './contract';

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

/**
 * The host's network side: its bridges, VLAN links and taps, and the addresses each running
 * guest with NICs reports through its agent (asked side by side, briefly: a silent agent is
 * reported as such, not waited on).
 */
async function reportNetwork(qemu: QemuHost, network: HostNetwork): Promise<HostNetworkReport> {
  const networked = qemu.list().filter((g) => g.spec.nics?.length);
  return {
    interfaces: await network.interfaces(),
    guests: await Promise.all(
      networked.map((g) =>
        readGuestAddresses(qemu.files(g.vmId).agentSocket, 2000).then(
          (addresses) => ({ vmId: g.vmId, addresses }),
          (err: Error) => ({ vmId: g.vmId, error: err.message }),
        ),
      ),
    ),
  };
}

/** Reports everything this host runs, as the hypervisor sees it. */
export async function reportHost(
  deps: Pick<HostActivityDeps, 'hostId' | 'qemu' | 'patchLevel' | 'accelFacts' | 'network'>,
  req: ReportHostRequest = {},
): Promise<HostReport> {
  const guests = await Promise.all(
    deps.qemu.list().map((g) => reportGuest(deps.qemu, g.vmId, g.pid, g.spec.memoryMiB)),
  );
  return {
    hostId: deps.hostId,
    facts: {
      ...(await readHostFacts(deps.accelFacts)),
      ...(deps.network ? { network: deps.network.facts } : {}),
    },
    patchLevel: deps.patchLevel(),
    load: readHostLoad(),
    guests,
    ...(req.network && deps.network ? { network: await reportNetwork(deps.qemu, deps.network) } : {}),
  };
}

/** Activities that run on one host, scheduled on its task queue `host/<hostId>`. */
export function createHostActivities(deps: HostActivityDeps): HostContract {
  return {
    async reportHost(req?: ReportHostRequest): Promise<HostReport> {
      return reportHost(deps, req);
    },
    ...createGuestActivities(deps),
    ...createNicActivities(deps),
    ...createMigrationActivities(deps),
    ...createBackupActivities(deps),
    ...createPatchActivities(deps),
    ...createInspectionActivities(deps),
  };
}
