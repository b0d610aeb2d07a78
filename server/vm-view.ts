import type { VmDoc } from '../inventory/schemas';
import { projectOf } from './vm-access';

/** What the API shows of a VM: its state and placement, not the inventory's bookkeeping. */
export function vmView(vm: VmDoc) {
  return {
    vmId: vm._id,
    project: projectOf(vm),
    state: vm.state,
    host: vm.host,
    image: vm.image,
    memoryMiB: vm.memoryMiB,
    vcpus: vm.vcpus,
    /** Each disk's provisioned size, root first; null for a VM recorded before disk quotas. */
    diskBytes: vm.diskBytes ?? null,
    labels: vm.labels,
    nics: (vm.guest.nics ?? []).map(({ network, mac, ip }) => ({ network, mac, ip })),
    ha: vm.ha ?? { enabled: false, priority: 0 },
    migration: vm.migration ? { target: vm.migration.target, phase: vm.migration.phase } : null,
    createdAt: vm.createdAt,
  };
}
export type VmView = ReturnType<typeof vmView>;
