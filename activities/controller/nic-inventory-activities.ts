import { parseInput, ValidationError } from '../../domain/errors';
import { cannotServe, freeNicSlot, MAX_NICS, type NicConfig } from '../../domain/network';
import { addNicRequestSchema, removeNicRequestSchema } from '../../domain/requests';
import type { Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { allocateNic, releaseNicClaims } from '../../inventory/networks';
import type { VmDoc } from '../../inventory/schemas';
import { getVm, updateVm } from '../../inventory/vms';
import { currentRun } from './run-context';

/** Inventory side of adding and removing a VM's NICs (workflows/vm-nics.ts). */
export function createNicInventoryActivities(inv: Inventory) {
  const audit = (vmId: string, outcome: 'completed' | 'rolled-back', message: string, operation: string) =>
    recordEvent(inv, { operation, subject: `vm/${vmId}`, outcome, message, ...currentRun() });

  return {
    /**
     * Checks a NIC can be added (the VM is on no NIC of that network yet, has a free slot, and its
     * host carries the network), then claims its MAC and address. Nothing is claimed on refusal.
     */
    async allocateVmNic(input: unknown): Promise<NicConfig> {
      const req = parseInput(addNicRequestSchema, input, '');
      const vm = await getVm(inv, req.vmId);
      const nics = vm.guest.nics ?? [];
      if (nics.some((n) => n.network === req.network))
        throw new ValidationError('network', `vm ${vm._id} already has a NIC on network ${req.network}`);
      const slot = freeNicSlot(nics);
      if (slot === undefined)
        throw new ValidationError('network', `vm ${vm._id} has ${MAX_NICS} NICs, the most a VM has`);
      const network = await inv.networks.findOne({ _id: req.network });
      if (vm.state === 'running' && vm.host && network) {
        const host = await inv.hosts.findOne({ _id: vm.host });
        const why = cannotServe(host?.facts.network, { network: req.network, uplink: network.spec.uplink });
        if (why) throw new ValidationError('network', `${vm.host} ${why}`);
      }
      return allocateNic(inv, vm._id, { network: req.network, ip: req.ip }, slot, {
        network: 'network',
        ip: 'ip',
      });
    },

    /** The NIC is on the VM now: recorded in its guest configuration, so every later start and migration has it. */
    async recordNicAdded(req: { vmId: string; nic: NicConfig; live: string }): Promise<void> {
      const vm = await getVm(inv, req.vmId);
      const nics = (vm.guest.nics ?? []).filter((n) => n.mac !== req.nic.mac);
      await updateVm(inv, vm._id, { guest: { ...vm.guest, nics: [...nics, req.nic] } });
      await audit(
        vm._id,
        'completed',
        `NIC ${req.nic.mac} on network ${req.nic.network} (${req.nic.ip}) added to vm ${vm._id}: ${req.live}`,
        'add-nic',
      );
    },

    /** Gives back a NIC's claims that were never recorded on the VM (its add was undone). */
    async releaseVmNic(req: { vmId: string; network: string; reason: string }): Promise<void> {
      await releaseNicClaims(inv, req.vmId, [req.network]);
      await audit(
        req.vmId,
        'rolled-back',
        `no NIC was added on network ${req.network}: ${req.reason}`,
        'add-nic',
      );
    },

    /** Which NIC of the VM a removal means, checked before anything changes. */
    async nicToRemove(input: unknown): Promise<{ vm: VmDoc; nic: NicConfig }> {
      const req = parseInput(removeNicRequestSchema, input, '');
      const vm = await getVm(inv, req.vmId);
      const nic = (vm.guest.nics ?? []).find((n) => n.network === req.network);
      if (!nic)
        throw new ValidationError(
          'network',
          `vm ${vm._id} has no NIC on network ${req.network} (its networks: ${(vm.guest.nics ?? []).map((n) => n.network).join(', ') || 'none'})`,
        );
      return { vm, nic };
    },

    /** The NIC is gone from the VM: forgotten, and its MAC and address given back. */
    async recordNicRemoved(req: { vmId: string; network: string }): Promise<void> {
      const vm = await getVm(inv, req.vmId);
      const nics = (vm.guest.nics ?? []).filter((n) => n.network !== req.network);
      await updateVm(inv, vm._id, { guest: { ...vm.guest, nics } });
      await releaseNicClaims(inv, vm._id, [req.network]);
      await audit(
        vm._id,
        'completed',
        `NIC on network ${req.network} removed from vm ${vm._id}`,
        'remove-nic',
      );
    },
  };
}

export type NicInventoryActivities = ReturnType<typeof createNicInventoryActivities>;
