import type { Client } from '@temporalio/client';
import { backupPolicySchema, type BackupPolicySpec } from '../../domain/backup';
import { NotFoundError, parseInput } from '../../domain/errors';
import type { Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { currentRun } from './run-context';

export interface PolicyRunResult {
  vmId: string;
  outcome: 'completed' | 'failed' | 'skipped';
  reason?: string;
  backupId?: string;
}

/** Controller-side steps of a scheduled policy run: what to back up and how the run went. */
export function createBackupPolicyActivities(inv: Inventory, client: () => Promise<Client>) {
  return {
    /** The policy and the VMs it selects now (by id, or by labels). */
    async loadBackupPolicy(req: {
      name: string;
    }): Promise<{ spec: BackupPolicySpec; vmIds: string[]; scheduleId: string }> {
      const doc = await inv.backupPolicies.findOne({ _id: req.name });
      if (!doc) throw new NotFoundError('backup policy', req.name);
      const spec = parseInput(backupPolicySchema, doc.spec, 'policy');
      let vmIds: string[];
      if (spec.vmIds) vmIds = spec.vmIds;
      else {
        const filter = Object.fromEntries(
          Object.entries(spec.vmLabels ?? {}).map(([k, v]) => [`labels.${k}`, v]),
        );
        vmIds = (await inv.vms.find(filter).sort({ _id: 1 }).toArray()).map((v) => v._id);
      }
      return { spec, vmIds, scheduleId: doc.scheduleId };
    },

    /** The newest good backup of each VM whose verification is older than `olderThanHours`. */
    async backupsDueForVerification(req: {
      vmIds: string[];
      olderThanHours: number;
    }): Promise<{ vmId: string; backupId: string }[]> {
      const cutoff = new Date(Date.now() - req.olderThanHours * 3_600_000);
      const due: { vmId: string; backupId: string }[] = [];
      for (const vmId of req.vmIds) {
        const newest = await inv.backups
          .find({ vmId, state: 'good' })
          .sort({ finishedAt: -1 })
          .limit(1)
          .next();
        if (newest && (!newest.verifiedAt || newest.verifiedAt < cutoff))
          due.push({ vmId, backupId: newest._id });
      }
      return due;
    },

    /**
     * Records how a run went. A run with any failure counts towards the policy's failure
     * streak; at `pauseAfterFailures` the schedule is paused with the reason as its note.
     * A VM that has had no good backup for `alertAfterHours` raises an audit event.
     */
    async recordPolicyRun(req: {
      name: string;
      results: PolicyRunResult[];
    }): Promise<{ paused: boolean; stale: string[] }> {
      const doc = await inv.backupPolicies.findOne({ _id: req.name });
      if (!doc) throw new NotFoundError('backup policy', req.name);
      const spec = parseInput(backupPolicySchema, doc.spec, 'policy');
      const failed = req.results.filter((r) => r.outcome === 'failed');
      const streak = failed.length > 0 ? doc.consecutiveFailures + 1 : 0;
      const summary = `${req.results.filter((r) => r.outcome === 'completed').length} completed, ${failed.length} failed, ${req.results.filter((r) => r.outcome === 'skipped').length} skipped`;
      const now = new Date();
      await inv.backupPolicies.updateOne(
        { _id: req.name },
        {
          $set: { consecutiveFailures: streak, lastRunAt: now, lastOutcome: summary, updatedAt: now },
          $inc: { revision: 1 },
        },
      );
      await recordEvent(inv, {
        operation: 'scheduled-backup',
        subject: `backup-policy/${req.name}`,
        outcome: failed.length > 0 ? 'failed' : 'completed',
        message: `policy ${req.name}: ${summary}${failed.map((f) => `; ${f.vmId}: ${f.reason}`).join('')}`,
        details: { results: req.results },
        ...currentRun(),
      });
      let paused = false;
      if (streak >= spec.pauseAfterFailures) {
        const note = `paused by virtflow after ${streak} consecutive failed runs; last: ${failed.map((f) => `${f.vmId}: ${f.reason}`).join('; ')}`;
        await (await client()).schedule.getHandle(doc.scheduleId).pause(note.slice(0, 500));
        paused = true;
      }
      const stale: string[] = [];
      const cutoff = new Date(Date.now() - spec.alertAfterHours * 3_600_000);
      for (const r of req.results) {
        const good = await inv.backups.findOne({ vmId: r.vmId, state: 'good', finishedAt: { $gte: cutoff } });
        if (good) continue;
        stale.push(r.vmId);
        await recordEvent(inv, {
          operation: 'backup-freshness',
          subject: `vm/${r.vmId}`,
          outcome: 'failed',
          message: `no successful backup of vm ${r.vmId} within ${spec.alertAfterHours} hours (policy ${req.name})`,
          ...currentRun(),
        });
      }
      return { paused, stale };
    },
  };
}
