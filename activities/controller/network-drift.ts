import { hostInterfaceNames, nicViews } from '../../domain/network';
import type { DriftFinding } from '../../inventory/drift';
import type { VmDoc } from '../../inventory/schemas';
import type { HostNetworkReport } from '../host/contract';

/**
 * What the reconciler finds on a host's network side:
 * - `nic-drift`: a running guest whose agent reports another address on a NIC than virtflow
 *   configured (or none), found by the NIC's MAC;
 * - `orphan-interface`: a tap whose MAC is no NIC of a guest running here, or a bridge or VLAN
 *   link of no network. Reported, never removed by itself: the operator decides.
 */
export function networkDrift(
  hostId: string,
  report: HostNetworkReport,
  /** The VMs whose QEMU runs on the host (by the same report), as the inventory records them. */
  vmsHere: VmDoc[],
  networks: string[],
): DriftFinding[] {
  const findings: DriftFinding[] = [];
  const byId = new Map(vmsHere.map((vm) => [vm._id, vm]));
  for (const g of report.guests) {
    const vm = byId.get(g.vmId);
    if (!vm || vm.host !== hostId || vm.state !== 'running' || !g.addresses) continue;
    for (const view of nicViews(vm.guest.nics ?? [], g.addresses)) {
      if (!view.drift) continue;
      findings.push({
        kind: 'nic-drift',
        hostId,
        subject: `vm/${vm._id}/nic/${view.mac}`,
        message: `vm ${vm._id} on network ${view.network}: ${view.drift}`,
        fix: `check the guest's network configuration (virtflow vm show ${vm._id})`,
      });
    }
  }
  const taps = new Set(
    vmsHere.flatMap((vm) => (vm.guest.nics ?? []).map((n) => hostInterfaceNames.tap(n.mac))),
  );
  const links = new Set(
    networks.flatMap((n) => [
      hostInterfaceNames.bridge(n),
      hostInterfaceNames.vlan(n),
      hostInterfaceNames.vlanPort(n),
    ]),
  );
  for (const i of report.interfaces) {
    const owned = i.kind === 'tap' ? taps.has(i.name) : links.has(i.name);
    if (owned) continue;
    findings.push({
      kind: 'orphan-interface',
      hostId,
      subject: `host/${hostId}/interface/${i.name}`,
      message:
        i.kind === 'tap'
          ? `tap ${i.name} on ${hostId}${i.master ? ` (on ${i.master})` : ''} is no NIC of a guest running there`
          : `${i.kind} ${i.name} on ${hostId} belongs to no network virtflow knows (a deleted network's?)`,
      fix: `remove it on ${hostId} once nothing uses it: ip link del ${i.name}`,
    });
  }
  return findings;
}
