import { executeChild, ParentClosePolicy } from '@temporalio/workflow';
import type { ExitMaintenanceRequest } from '../domain/maintenance';
import { workflowIds } from '../domain/names';
import { inventory } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { liveMigration } from './live-migration';
import { trackOperation, type Operation } from './observability';

/** Returns a host to service (`host/<hostId>`), optionally migrating its evacuated VMs back. */
export async function exitMaintenance(request: ExitMaintenanceRequest) {
  const op = trackOperation({ operation: 'exit-maintenance', hosts: [request.hostId] });
  return returnToService(op, request);
}

/** The steps of leaving maintenance, shared by every `host/<hostId>` workflow that needs them. */
export async function returnToService(op: Operation, request: ExitMaintenanceRequest) {
  try {
    const { evacuatedVms } = await inventory.endMaintenance(request);
    const returned: string[] = [];
    if (request.migrateBack) {
      for (const vmId of evacuatedVms) {
        op.phase('migrating-back', `moving ${vmId} back to ${request.hostId}`);
        await executeChild(liveMigration, {
          workflowId: workflowIds.vm(vmId),
          args: [{ vmId, to: request.hostId }],
          // Terminating the exit must not cut a migration off: it is asked to cancel, and rolls back.
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          staticSummary: `Return VM ${vmId} to ${request.hostId}`,
        });
        returned.push(vmId);
      }
    }
    op.phase(
      'done',
      `${request.hostId} is back in service${returned.length ? `; ${returned.length} VM(s) returned` : ''}`,
    );
    return { hostId: request.hostId, returned };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
