import type { Client } from '@temporalio/client';
import {
  backupRequestSchema,
  restoreRequestSchema,
  retentionSchema,
  type BackupRequest,
  type RestoreRequest,
  type RetentionPolicy,
} from '../domain/backup';
import type { Config } from '../domain/config';
import { parseInput } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE } from '../domain/names';
import { idSchema } from '../domain/ids';
import type { backupVm, pruneVmBackups, restoreVm, verifyBackup } from '../workflows';
import { runUrl } from './temporal';
import { startVmWorkflow } from './vm-operations';

/** The typed client for backups, restores, verification and pruning. */
export function backupOperations(client: Client, config: Config) {
  return {
    /** Backs a VM up now (as `vm/<vmId>`, so it never overlaps another operation on the VM). */
    async run(req: BackupRequest & { retention?: RetentionPolicy }) {
      const spec = parseInput(backupRequestSchema, req, '');
      const retention = req.retention ? parseInput(retentionSchema, req.retention, 'retention') : undefined;
      return startVmWorkflow<typeof backupVm>(
        client,
        config,
        'backupVm',
        spec.vmId,
        [{ ...spec, retention }],
        `Back up VM ${spec.vmId}${spec.full ? ' (full)' : ''}`,
      );
    },
    async restore(req: RestoreRequest) {
      const spec = parseInput(restoreRequestSchema, req, '');
      return startVmWorkflow<typeof restoreVm>(
        client,
        config,
        'restoreVm',
        spec.vmId,
        [spec],
        `Restore backup ${spec.backupId} as VM ${spec.vmId}`,
      );
    },
    async prune(vmId: string, retention: RetentionPolicy, dryRun: boolean) {
      parseInput(idSchema, vmId, 'vmId');
      const policy = parseInput(retentionSchema, retention, 'retention');
      return startVmWorkflow<typeof pruneVmBackups>(
        client,
        config,
        'pruneVmBackups',
        vmId,
        [{ vmId, retention: policy, dryRun }],
        `${dryRun ? 'Plan pruning' : 'Prune'} backups of VM ${vmId}`,
      );
    },
    async verify(backupId: string) {
      const workflowId = `backup/${backupId}/verify`;
      const handle = await client.workflow.start<typeof verifyBackup>('verifyBackup', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId,
        args: [{ backupId }],
        staticSummary: `Verify backup ${backupId} and its chain`,
      });
      return {
        workflowId,
        runId: handle.firstExecutionRunId,
        url: runUrl(config, workflowId),
        handle,
        result: () => handle.result(),
      };
    },
  };
}
