import { CancellationScope } from '@temporalio/workflow';
import type { NicConfig } from '../domain/network';
import type { AddNicRequest, RemoveNicRequest } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

export interface AddNicResult {
  vmId: string;
  nic: NicConfig;
  /** Added to the running guest now, or only recorded for its next start (a stopped VM). */
  live: boolean;
  /** How the guest got its address (through its agent now, or at its next boot). */
  guest: string;
}

/**
 * Adds a NIC to a VM (`vm/<vmId>`): claims its MAC and address, hot-plugs it into the running
 * guest (tap on the network's bridge, virtio-net device at its own slot), gives the guest its
 * address through its agent, then records it. A stopped VM gets it at its next start. Any
 * failure after the claims unplugs what was plugged and gives the claims back.
 */
export async function addNic(request: AddNicRequest): Promise<AddNicResult> {
  const op = trackOperation({ operation: 'add-nic', vm: request.vmId });
  let nic: NicConfig | undefined;
  let host: string | undefined;
  try {
    const vm = await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'add a NIC to',
      allowedStates: ['running', 'stopped'],
    });
    host = vm.state === 'running' ? vm.host! : undefined;
    if (host) op.hosts([host]);
    op.phase('claiming', `claiming a MAC and an address on network ${request.network} for ${vm._id}`);
    nic = await inventory.allocateVmNic(request);
    op.networks([nic.network]);
    let guest = 'the guest gets it at its next start';
    if (host) {
      op.phase('plugging', `adding NIC ${nic.mac} (${nic.ip}) to ${vm._id} on ${host}`);
      guest = (await onHost(host).hotplugNic({ vmId: vm._id, nic })).guest;
    }
    await inventory.recordNicAdded({ vmId: vm._id, nic, live: host ? `live, ${guest}` : guest });
    op.phase('done', `${vm._id} has NIC ${nic.mac} on ${nic.network} (${nic.ip}): ${guest}`);
    return { vmId: vm._id, nic, live: !!host, guest };
  } catch (err) {
    const reason = reasonOf(err);
    if (nic) {
      const claimed = nic;
      op.phase('compensating', `undoing the NIC: ${reason}`);
      await CancellationScope.nonCancellable(async () => {
        if (host)
          await onHost(host)
            .unplugNic({ vmId: request.vmId, mac: claimed.mac })
            .catch(() => undefined);
        await inventory.releaseVmNic({ vmId: request.vmId, network: claimed.network, reason });
      });
    }
    op.phase('failed', reason);
    throw operatorFailure(err);
  }
}

/**
 * Removes a VM's NIC on a network (`vm/<vmId>`): the running guest releases the device (ACPI
 * hot-unplug) and its tap goes, then the NIC is forgotten and its MAC and address given back.
 * A guest that does not release it keeps it, and nothing is forgotten.
 */
export async function removeNic(request: RemoveNicRequest): Promise<{ vmId: string; nic: NicConfig }> {
  const op = trackOperation({ operation: 'remove-nic', vm: request.vmId });
  try {
    await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'remove a NIC from',
      allowedStates: ['running', 'stopped'],
    });
    const { vm, nic } = await inventory.nicToRemove(request);
    op.networks([nic.network]);
    if (vm.state === 'running' && vm.host) {
      op.hosts([vm.host]);
      op.phase('unplugging', `asking ${vm._id} on ${vm.host} to release NIC ${nic.mac}`);
      await onHost(vm.host, { startToCloseTimeout: '2 minutes' }).unplugNic({ vmId: vm._id, mac: nic.mac });
    }
    await inventory.recordNicRemoved({ vmId: vm._id, network: nic.network });
    op.phase('done', `${vm._id} has no NIC on ${nic.network} any more`);
    return { vmId: vm._id, nic };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
