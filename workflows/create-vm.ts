import { CancellationScope, log } from '@temporalio/workflow';
import type { CreateVmRequest, ProvisionSpec } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { placeAndClaim } from './place-and-claim';
import { trackOperation, type Operation } from './observability';

export interface CreateVmResult {
  vmId: string;
  host: string;
  diskPath: string;
  /** How the guest proved it runs: its agent answered, or its console printed this heartbeat. */
  verifiedBy: 'guest-agent' | 'console';
  heartbeatSeq: number | null;
}

/**
 * Creates a VM on the most expedient host (or the one requested): validate, place, reserve,
 * make its disk from the image, start it, wait until the guest really runs, then commit owner
 * and state. Any failure after validation compensates (stop, delete disk, release, forget) so
 * nothing is left half-done.
 */
export async function createVm(request: CreateVmRequest): Promise<CreateVmResult> {
  const op = trackOperation({ operation: 'create-vm', vm: request.vmId });
  op.phase('validating', `validating the request for vm ${request.vmId}`);
  let begun;
  try {
    begun = await inventory.beginCreateVm(request);
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  const { spec, image } = begun;
  // Optional: a run begun before VMs had NICs has none in its history, so sets nothing.
  op.networks((spec.guest?.nics ?? []).map((n) => n.network));
  return provisionVm(op, spec, async (host) => {
    op.phase('preparing-disk', `creating the disk of ${spec.vmId} from image ${spec.image}`, { host });
    return onHost(host).prepareDisk({
      vmId: spec.vmId,
      image,
      sizeBytes: image.sizeBytes,
      // Optional: a run begun before VMs had guest settings has none in its history.
      dataDisks: spec.guest?.dataDisks,
    });
  });
}

/**
 * The steps every new VM goes through once its request is validated and its id claimed: place,
 * reserve, make its disk (from an image, or from a backup), start, wait until the guest really
 * runs, commit. Any failure compensates: stop, delete disk, release, forget.
 */
export async function provisionVm(
  op: Operation,
  spec: ProvisionSpec,
  makeDisk: (host: string) => Promise<{ diskPath: string }>,
): Promise<CreateVmResult> {
  let host: string | undefined;
  try {
    op.phase(
      'placing',
      spec.host ? `checking requested host ${spec.host}` : 'choosing the most expedient host',
    );
    host = await placeAndClaim(
      { vmId: spec.vmId, memoryMiB: spec.memoryMiB, vcpus: spec.vcpus },
      () => inventory.placeVm({ spec }),
      (decision) =>
        op.phase(
          'reserving',
          `reserving ${spec.memoryMiB} MiB and ${spec.vcpus} vCPU on ${decision.chosen}`,
          {
            decision,
          },
        ),
    );
    op.hosts([host]);
    const agent = onHost(host);
    const { diskPath } = await makeDisk(host);
    op.phase('starting', `starting QEMU for ${spec.vmId} on ${host}`);
    await agent.startGuest({
      vmId: spec.vmId,
      memoryMiB: spec.memoryMiB,
      vcpus: spec.vcpus,
      guest: spec.guest,
    });
    op.phase('booting', `waiting for ${spec.vmId} to boot and answer`);
    const { heartbeatSeq, via } = await onHost(host, {
      startToCloseTimeout: `${spec.bootTimeoutSec + 30} seconds`,
      heartbeatTimeout: '15 seconds',
    }).waitForGuestBoot({
      vmId: spec.vmId,
      timeoutMs: spec.bootTimeoutSec * 1000,
      // Optional: a run begun before VMs had guest settings has none in its history.
      guestAgent: spec.guest?.guestAgent,
    });
    op.phase('committing', `recording ${spec.vmId} as running on ${host}`);
    await inventory.commitVmCreated({ vmId: spec.vmId, host, diskPath });
    op.phase('done', `${spec.vmId} is running on ${host}`);
    return { vmId: spec.vmId, host, diskPath, verifiedBy: via ?? 'console', heartbeatSeq };
  } catch (err) {
    const reason = reasonOf(err);
    op.phase('compensating', `undoing the create: ${reason}`);
    await CancellationScope.nonCancellable(() => compensateCreate(spec.vmId, host, reason));
    op.phase('failed', reason);
    throw operatorFailure(err);
  }
}

/** Stop the guest, delete its disk, release its reservation, forget the VM. */
async function compensateCreate(vmId: string, host: string | undefined, reason: string): Promise<void> {
  if (host) {
    const agent = onHost(host, { scheduleToStartTimeout: '30 seconds' });
    try {
      await agent.destroyGuest({ vmId });
      await agent.deleteDisk({ vmId });
    } catch (err) {
      // The host is gone: its leftovers are the reconciler's to find. The inventory is still undone.
      log.warn('could not clean up on the host', { host, vmId, error: reasonOf(err) });
      reason = `${reason}; cleanup on ${host} is pending: ${reasonOf(err)}`;
    }
  }
  await inventory.abandonVmCreate({ vmId, reason });
}
