import type { RestoreRequest } from '../domain/backup';
import { inventory, onHost } from './activity-proxies';
import { provisionVm, type CreateVmResult } from './create-vm';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/**
 * Restores any backup of a chain as a new VM on any eligible host: placement and reservation as
 * for a create, the chain flattened into a fresh disk that must compare identical to it, and a
 * guest that must boot. Runs as `vm/<newVmId>`.
 */
export async function restoreVm(request: RestoreRequest): Promise<CreateVmResult & { backupId: string }> {
  const op = trackOperation({ operation: 'restore-vm', vm: request.vmId });
  op.phase('validating', `checking backup ${request.backupId}`);
  let begun;
  try {
    begun = await inventory.beginRestoreVm(request);
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  const { spec, backupPath } = begun;
  const result = await provisionVm(op, spec, async (host) => {
    op.phase('restoring-disk', `flattening backup ${request.backupId} into the disk of ${spec.vmId}`, {
      host,
    });
    return onHost(host, { startToCloseTimeout: '6 hours' }).restoreDisk({
      vmId: spec.vmId,
      backupPath,
      // A run begun before data disks has no count in its history.
      dataDisks: spec.guest.dataDisks?.length ?? 0,
    });
  });
  return { ...result, backupId: request.backupId };
}
