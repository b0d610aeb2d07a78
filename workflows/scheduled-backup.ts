import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { executeChild, ParentClosePolicy, startChild } from '@temporalio/workflow';
import type { PolicyRunResult } from '../activities/controller/backup-policy-activities';
import type { BackupPolicySpec } from '../domain/backup';
import { workflowIds } from '../domain/names';
import { inventory } from './activity-proxies';
import { backupVm } from './backup-vm';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';
import { verifyBackup } from './verify-backup';

/**
 * One run of a backup policy, started by its Temporal Schedule: a child `backupVm` per selected
 * VM (as `vm/<vmId>`, so a VM busy with another operation is reported skipped, never silently
 * missed), at most `maxParallel` at once, each pruning by the policy's retention; then the run is
 * recorded, the failure streak checked, and stale VMs reported.
 */
export async function scheduledBackup(req: {
  policy: string;
}): Promise<{ results: PolicyRunResult[]; paused: boolean }> {
  const op = trackOperation({ operation: 'scheduled-backup' });
  try {
    const { spec, vmIds } = await inventory.loadBackupPolicy({ name: req.policy });
    op.phase('backing-up', `policy ${req.policy}: ${vmIds.length} VM(s), ${spec.maxParallel} at a time`);
    const results: PolicyRunResult[] = [];
    const queue = [...vmIds];
    const worker = async () => {
      for (let vmId = queue.shift(); vmId; vmId = queue.shift()) {
        results.push(await backupOne(vmId, req.policy, spec));
        op.phase('backing-up', `policy ${req.policy}: ${results.length}/${vmIds.length} done`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(spec.maxParallel, vmIds.length) }, worker));
    // Backups verified long ago are checked again: a file can rot after it was written.
    for (const { vmId, backupId } of await inventory.backupsDueForVerification({
      vmIds,
      olderThanHours: spec.reverifyAfterHours,
    })) {
      op.phase('verifying', `re-verifying ${backupId}`);
      await executeChild(verifyBackup, {
        workflowId: `backup/${backupId}/verify`,
        args: [{ backupId }],
      }).catch((err: unknown) =>
        results.push({ vmId, outcome: 'failed', reason: `verification of ${backupId}: ${reasonOf(err)}` }),
      );
    }
    const { paused } = await inventory.recordPolicyRun({ name: req.policy, results });
    op.phase(
      'done',
      `policy ${req.policy}: ${results.map((r) => `${r.vmId} ${r.outcome}`).join(', ') || 'no VMs selected'}`,
    );
    return { results, paused };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}

async function backupOne(vmId: string, policy: string, spec: BackupPolicySpec): Promise<PolicyRunResult> {
  let child;
  try {
    child = await startChild(backupVm, {
      workflowId: workflowIds.vm(vmId),
      args: [
        {
          vmId,
          policy,
          retention: spec.retention,
          maxSpeedMiBps: spec.maxSpeedMiBps,
          fullEvery: spec.fullEvery,
          full: false,
        },
      ],
      // A backup that has begun finishes even if this run is terminated by an overlap policy.
      parentClosePolicy: ParentClosePolicy.ABANDON,
      staticSummary: `Back up VM ${vmId} (policy ${policy})`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { vmId, outcome: 'skipped', reason: 'VM busy with another operation' };
    }
    return { vmId, outcome: 'failed', reason: reasonOf(err) };
  }
  try {
    const r = await child.result();
    return { vmId, outcome: 'completed', backupId: r.backupId };
  } catch (err) {
    return { vmId, outcome: 'failed', reason: reasonOf((err as { cause?: unknown }).cause ?? err) };
  }
}
