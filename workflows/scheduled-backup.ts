import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ContinueAsNew,
  continueAsNew,
  executeChild,
  ParentClosePolicy,
  patched,
  startChild,
} from '@temporalio/workflow';
import type { PolicyRunResult } from '../activities/controller/backup-policy-activities';
import type { BackupPolicySpec } from '../domain/backup';
import { workflowIds } from '../domain/names';
import { inventory } from './activity-proxies';
import { backupVm } from './backup-vm';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';
import { verifyBackup } from './verify-backup';

/** VMs one run backs up before it continues as new: each costs its history some ten events. */
const FAN_OUT_CHUNK = 500;
/** Runs begun before the fan-out was chunked backed every VM up in one history. */
const FAN_OUT_IN_CHUNKS = 'backup-fan-out-chunks';

/** What a policy run carries into its next run when it continues as new. */
export interface BackupRunCarried {
  spec: BackupPolicySpec;
  /** The VMs still to back up. */
  vmIds: string[];
  /** Every VM's outcome so far. */
  results: PolicyRunResult[];
}

/**
 * One run of a backup policy, started by its Temporal Schedule: a child `backupVm` per selected
 * VM (as `vm/<vmId>`, so a VM busy with another operation is reported skipped, never silently
 * missed), at most `maxParallel` at once, each pruning by the policy's retention; then the run is
 * recorded, the failure streak checked, and stale VMs reported. A policy over many VMs backs
 * them up `chunk` at a time, continuing as new between chunks, so no history grows with the
 * fleet (5,000 VMs would otherwise near Temporal's 51,200-event limit).
 */
export async function scheduledBackup(req: {
  policy: string;
  /** VMs per run before continuing as new (tests make it small). */
  chunk?: number;
  carried?: BackupRunCarried;
}): Promise<{ results: PolicyRunResult[]; paused: boolean }> {
  const op = trackOperation({ operation: 'scheduled-backup' });
  try {
    const { spec, vmIds } = req.carried ?? (await inventory.loadBackupPolicy({ name: req.policy }));
    const results: PolicyRunResult[] = [...(req.carried?.results ?? [])];
    const chunk = req.chunk ?? FAN_OUT_CHUNK;
    const inChunks = vmIds.length > chunk && (req.carried !== undefined || patched(FAN_OUT_IN_CHUNKS));
    const batch = inChunks ? vmIds.slice(0, chunk) : vmIds;
    const total = results.length + vmIds.length;
    op.phase('backing-up', `policy ${req.policy}: ${total} VM(s), ${spec.maxParallel} at a time`);
    const queue = [...batch];
    const worker = async () => {
      for (let vmId = queue.shift(); vmId; vmId = queue.shift()) {
        results.push(await backupOne(vmId, req.policy, spec));
        op.phase('backing-up', `policy ${req.policy}: ${results.length}/${total} done`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(spec.maxParallel, batch.length) }, worker));
    if (batch.length < vmIds.length)
      await continueAsNew<typeof scheduledBackup>({
        policy: req.policy,
        chunk: req.chunk,
        carried: { spec, vmIds: vmIds.slice(batch.length), results },
      });
    // Backups verified long ago are checked again: a file can rot after it was written.
    for (const { vmId, backupId } of await inventory.backupsDueForVerification({
      vmIds: results.map((r) => r.vmId),
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
    op.phase('done', `policy ${req.policy}: ${describeResults(results)}`);
    return { results, paused };
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}

/** Each VM's outcome, or for a large policy the counts and the VMs that did not complete. */
function describeResults(results: PolicyRunResult[]): string {
  if (results.length === 0) return 'no VMs selected';
  if (results.length <= 20) return results.map((r) => `${r.vmId} ${r.outcome}`).join(', ');
  const others = results.filter((r) => r.outcome !== 'completed');
  return (
    `${results.length - others.length} of ${results.length} completed` +
    (others.length
      ? `; ${others
          .slice(0, 20)
          .map((r) => `${r.vmId} ${r.outcome}`)
          .join(', ')}`
      : '') +
    (others.length > 20 ? `, and ${others.length - 20} more` : '')
  );
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
