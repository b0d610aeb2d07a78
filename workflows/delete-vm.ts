import type { DeleteVmRequest } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/** Deletes a VM: stops its guest if it runs, deletes its disk, then forgets it. */
export async function deleteVm(request: DeleteVmRequest): Promise<{ vmId: string; host: string | null }> {
  const op = trackOperation({ operation: 'delete-vm', vm: request.vmId });
  const gracefulTimeoutSec = request.gracefulTimeoutSec ?? 30;
  try {
    const vm = await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'delete',
      allowedStates: ['running', 'stopped', 'crashed', 'deleting'],
    });
    const host = vm.host!;
    op.hosts([host]);
    // Marked first: a delete interrupted from here on is finished by running it again.
    await inventory.recordVmOutcome({
      vmId: vm._id,
      state: 'deleting',
      operation: 'delete-vm',
      outcome: 'info',
      message: `deleting vm ${vm._id} on ${host}`,
    });
    const agent = onHost(host, {
      startToCloseTimeout: `${gracefulTimeoutSec + 60} seconds`,
      heartbeatTimeout: '15 seconds',
    });
    op.phase('stopping', `stopping the guest of ${vm._id} on ${host}`);
    await agent.stopGuest({
      vmId: vm._id,
      gracefulMs: gracefulTimeoutSec * 1000,
      guestAgent: vm.guest?.guestAgent,
    });
    op.phase('deleting-disk', `deleting the disk of ${vm._id}`);
    await agent.deleteDisk({ vmId: vm._id });
    await inventory.recordVmDeleted({ vmId: vm._id, host });
    op.phase('done', `${vm._id} is deleted`);
    return { vmId: vm._id, host };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
