import { CancellationScope } from '@temporalio/workflow';
import type { BackupRequest, RetentionPolicy } from '../domain/backup';
import { lineageProblem } from '../domain/backup-lineage';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation, type Operation } from './observability';

export interface BackupResult {
  backupId: string;
  vmId: string;
  kind: 'full' | 'incremental';
  fullReason: string | null;
  chainId: string;
  path: string;
  sizeBytes: number;
  sha256: string;
  durationMs: number;
  copyMs: number;
  pruned: string[];
}

/**
 * Backs a VM up into the backup repository: incremental from the chain's dirty bitmap when the
 * lineage is intact, otherwise a full backup that records why. The backup is catalogued as
 * `running` before a byte is written and becomes `good` only after the file is checked, so no
 * half-written backup is ever taken for a good one. With a retention policy, the VM's backups
 * are pruned afterwards.
 */
export async function backupVm(
  request: BackupRequest & { retention?: RetentionPolicy },
): Promise<BackupResult> {
  const op = trackOperation({ operation: 'backup-vm', vm: request.vmId });
  op.phase('planning', `checking the backup chain of ${request.vmId}`);
  let plan;
  try {
    plan = await inventory.planBackup(request);
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  op.hosts([plan.host]);
  const agent = onHost(plan.host);
  let fullReason = plan.fullReason;
  if (!fullReason && plan.previous && plan.running) {
    fullReason = lineageProblem(
      plan.previous,
      await agent.inspectLineage({ vmId: plan.vmId, parentPath: plan.previous.path }),
    );
  }
  const kind = fullReason ? 'full' : 'incremental';
  const started = await inventory.catalogBackupStarted({ plan, kind, fullReason });
  op.phase(
    'copying',
    `${kind} backup ${started.backupId} of ${plan.vmId} on ${plan.host}${fullReason ? ` (${fullReason})` : ''}`,
  );
  let facts;
  try {
    const long = onHost(plan.host, { startToCloseTimeout: '6 hours', heartbeatTimeout: '30 seconds' });
    facts = plan.running
      ? await long.runBackup({
          vmId: plan.vmId,
          backupId: started.backupId,
          kind: started.kind,
          bitmap: started.bitmap,
          targetPath: started.targetPath,
          parentPath: started.parentPath,
          virtualSizeBytes: started.virtualSizeBytes,
          maxSpeedMiBps: plan.maxSpeedMiBps,
          guestAgent: plan.guestAgent,
        })
      : await long.offlineBackup({
          vmId: plan.vmId,
          diskPath: plan.diskPath,
          targetPath: started.targetPath,
          bitmap: started.bitmap,
        });
    await inventory.catalogBackupFinished({ backupId: started.backupId, ...facts });
  } catch (err) {
    const reason = reasonOf(err);
    op.phase('cleaning-up', `backup failed, removing the partial file: ${reason}`);
    await CancellationScope.nonCancellable(async () => {
      await agent.deleteBackupFile({ path: started.targetPath }).catch(() => undefined);
      await inventory.catalogBackupFailed({ backupId: started.backupId, reason });
    });
    op.phase('failed', reason);
    throw operatorFailure(err);
  }
  const pruned = request.retention ? await pruneBackups(op, plan.vmId, request.retention, false) : [];
  op.phase('done', `${kind} backup ${started.backupId}: ${(facts.sizeBytes / 1024 / 1024).toFixed(1)} MiB`);
  return {
    backupId: started.backupId,
    vmId: plan.vmId,
    kind: started.kind,
    fullReason,
    chainId: started.chainId,
    path: started.targetPath,
    ...facts,
    pruned,
  };
}

/** Applies retention to a VM's backups: deletes each pruned file, then marks it pruned. */
export async function pruneBackups(
  op: Operation,
  vmId: string,
  retention: RetentionPolicy,
  dryRun: boolean,
): Promise<string[]> {
  op.phase('pruning', `applying retention to the backups of ${vmId}`);
  const plan = await inventory.planPrune({ vmId, retention });
  if (dryRun || plan.prune.length === 0) return plan.prune.map((p) => p.id);
  const host = await inventory.pickWorkingHost({});
  for (const victim of plan.prune) {
    await onHost(host).deleteBackupFile({ path: victim.path });
    await inventory.markBackupPruned({ backupId: victim.id, reason: 'retention' });
  }
  return plan.prune.map((p) => p.id);
}
