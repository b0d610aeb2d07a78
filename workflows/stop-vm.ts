import type { StopVmRequest } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/** Stops a VM: ACPI power-down, then forced after the grace period. The VM keeps its host and disk. */
export async function stopVm(request: StopVmRequest): Promise<{ vmId: string; host: string; how: string }> {
  const op = trackOperation({ operation: 'stop-vm', vm: request.vmId });
  const gracefulTimeoutSec = request.gracefulTimeoutSec ?? 30;
  try {
    const vm = await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'stop',
      allowedStates: ['running', 'crashed'],
    });
    const host = vm.host!;
    op.hosts([host]);
    op.phase('stopping', `powering off ${vm._id} on ${host} (forced after ${gracefulTimeoutSec} s)`);
    const { how } = await onHost(host, {
      startToCloseTimeout: `${gracefulTimeoutSec + 60} seconds`,
      heartbeatTimeout: '15 seconds',
    }).stopGuest({ vmId: vm._id, gracefulMs: gracefulTimeoutSec * 1000, guestAgent: vm.guest?.guestAgent });
    await inventory.recordVmOutcome({
      vmId: vm._id,
      state: 'stopped',
      reason: `stopped (${how})`,
      operation: 'stop-vm',
      outcome: 'completed',
      message: `vm ${vm._id} stopped on ${host} (${how})`,
    });
    op.phase('done', `${vm._id} is stopped (${how})`);
    return { vmId: vm._id, host, how };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
