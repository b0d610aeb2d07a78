import { CancellationScope } from '@temporalio/workflow';
import type { VmRef } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/** Starts a stopped (or crashed) VM on its own host and waits until the guest really runs. */
export async function startVm(request: VmRef): Promise<{ vmId: string; host: string }> {
  const op = trackOperation({ operation: 'start-vm', vm: request.vmId });
  const bootTimeoutSec = request.bootTimeoutSec ?? 180;
  let vm;
  try {
    vm = await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'start',
      allowedStates: ['stopped', 'crashed'],
    });
    await inventory.assertHostUsable({ hostId: vm.host! });
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  const host = vm.host!;
  op.hosts([host]);
  try {
    op.phase('starting', `starting QEMU for ${vm._id} on ${host}`);
    await onHost(host).startGuest({
      vmId: vm._id,
      memoryMiB: vm.memoryMiB,
      vcpus: vm.vcpus,
      guest: vm.guest,
    });
    op.phase('booting', `waiting for ${vm._id} to boot and answer`);
    await onHost(host, {
      startToCloseTimeout: `${bootTimeoutSec + 30} seconds`,
      heartbeatTimeout: '15 seconds',
    }).waitForGuestBoot({
      vmId: vm._id,
      timeoutMs: bootTimeoutSec * 1000,
      guestAgent: vm.guest?.guestAgent,
    });
    await inventory.recordVmOutcome({
      vmId: vm._id,
      state: 'running',
      operation: 'start-vm',
      outcome: 'completed',
      message: `vm ${vm._id} started on ${host}`,
    });
  } catch (err) {
    const reason = reasonOf(err);
    op.phase('compensating', `the start failed, stopping the guest: ${reason}`);
    await CancellationScope.nonCancellable(async () => {
      await onHost(host, { scheduleToStartTimeout: '30 seconds' })
        .destroyGuest({ vmId: vm._id })
        .catch(() => undefined);
      await inventory.recordVmOutcome({
        vmId: vm._id,
        state: vm.state,
        reason: `start failed: ${reason}`,
        operation: 'start-vm',
        outcome: 'rolled-back',
        message: `vm ${vm._id} did not start on ${host}: ${reason}`,
      });
    });
    op.phase('failed', reason);
    throw operatorFailure(err);
  }
  op.phase('done', `${vm._id} is running on ${host}`);
  return { vmId: vm._id, host };
}
