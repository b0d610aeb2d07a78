import type { ResizeDiskRequest } from '../domain/requests';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

export interface ResizeDiskResult {
  vmId: string;
  host: string;
  previousBytes: number;
  sizeBytes: number;
  /** Grown under a running guest (QMP block_resize), or on the stopped VM's file. */
  online: boolean;
}

/**
 * Grows a VM's root disk or one of its data disks, while it runs or while it is stopped. Disks only grow: a smaller
 * size is refused by the host before anything changes. The guest sees the new size at once
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
    const r = await onHost(host).resizeDisk({ vmId: vm._id, sizeBytes: request.sizeBytes, disk });
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
