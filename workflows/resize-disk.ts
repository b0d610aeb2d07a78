import { patched } from '@temporalio/workflow';
import type { ResizeDiskRequest } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/** The growth is claimed in the project's quota and recorded before the host grows the disk. */
const DISK_GROWTH_CLAIMS_QUOTA = 'disk-growth-claims-quota';

export interface ResizeDiskResult {
  vmId: string;
  host: string;
  previousBytes: number;
  sizeBytes: number;
  /** Grown under a running guest (QMP block_resize), or on the stopped VM's file. */
  online: boolean;
}

/**
 * Grows a VM's root disk or one of its data disks, while it runs or while it is stopped. Disks
 * only grow: a smaller size is refused by the host before anything changes. The larger disk
 * takes more of the project's disk quota: it is claimed and recorded first, and the record put
 * back if the host does not grow the disk. The guest sees the new size at once
 * (virtio-blk reports the capacity change); growing its partitions is the guest's own work
 * (cloud-init's growpart does it at the next boot).
 */
export async function resizeDisk(request: ResizeDiskRequest): Promise<ResizeDiskResult> {
  const op = trackOperation({ operation: 'resize-disk', vm: request.vmId });
  try {
    const vm = await inventory.beginVmOperation({
      vmId: request.vmId,
      operation: 'resize-disk',
      allowedStates: ['running', 'stopped'],
    });
    const host = vm.host!;
    op.hosts([host]);
    const disk = request.disk ?? 0;
    const which = disk === 0 ? 'the disk' : `data disk ${disk}`;
    op.phase('resizing', `growing ${which} of ${vm._id} on ${host} to ${request.sizeBytes} bytes`);
    // Runs begun before disk quotas grew the disk unrecorded: they replay without the claim.
    const recorded = patched(DISK_GROWTH_CLAIMS_QUOTA)
      ? await inventory.claimDiskGrowth({ vmId: vm._id, disk, sizeBytes: request.sizeBytes })
      : undefined;
    let r;
    try {
      r = await onHost(host).resizeDisk({ vmId: vm._id, sizeBytes: request.sizeBytes, disk });
    } catch (err) {
      if (recorded) await inventory.restoreDiskRecord({ vmId: vm._id, diskBytes: recorded });
      throw err;
    }
    await inventory.recordVmOutcome({
      vmId: vm._id,
      state: vm.state,
      reason: vm.stateReason,
      operation: 'resize-disk',
      outcome: 'completed',
      message: `${which} of vm ${vm._id} grown from ${r.previousBytes} to ${r.sizeBytes} bytes (${r.online ? 'online' : 'offline'})`,
    });
    op.phase('done', `${which} of ${vm._id} is ${r.sizeBytes} bytes`);
    return { vmId: vm._id, host, ...r };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
