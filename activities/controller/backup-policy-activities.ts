import type { Client } from '@temporalio/client';
import { backupPolicySchema, type BackupPolicySpec } from '../../domain/backup';
import { DEFAULT_PROJECT } from '../../domain/access';
import { NotFoundError, parseInput } from '../../domain/errors';
import type { Inventory } from '../../inventory/db';
import type { BackupDoc } from '../../inventory/schemas';
import { recordEvent } from '../../inventory/events';
import {
  describeTally,
  tallyResults,
  emptyTally,
  type PolicyRunResult,
  type PolicyTally,
} from '../../domain/policy-tally';
import { currentRun } from './run-context';
import { pageAfter, PassSnapshots } from './pass-snapshots';

export type { PolicyRunResult } from '../../domain/policy-tally';

/** What a policy selects VMs by. */
type PolicySelector = Pick<BackupPolicySpec, 'vmIds' | 'vmLabels' | 'project'>;

/** Controller-side steps of a scheduled policy run: what to back up and how the run went. */
export function createBackupPolicyActivities(inv: Inventory, client: () => Promise<Client>) {
  const snapshots = new PassSnapshots();

  /**
   * The VMs a policy selects now (by id, or by labels), sorted by id: only its project's, for a
   * project's policy (a run begun before policies had projects selects fleet-wide, as it did).
   */
  async function selectedVmIds(selector: PolicySelector): Promise<string[]> {
    if (selector.vmIds) return [...selector.vmIds].sort();
    const filter = Object.fromEntries(
      Object.entries(selector.vmLabels ?? {}).map(([k, v]) => [`labels.${k}`, v]),
    );
    return (
      await inv.vms
        .find(filter, { projection: { _id: 1, project: 1 } })
        .sort({ _id: 1 })
        .toArray()
    )
      .filter((v) => !selector.project || (v.project ?? DEFAULT_PROJECT) === selector.project)
      .map((v) => v._id);
  }

  return {
    /** The policy and the VMs it selects now (by id, or by labels). */
    async loadBackupPolicy(req: {
      name: string;
      /** Only the spec: a run that selects its VMs page by page (policyVmPage). */
      specOnly?: boolean;
    }): Promise<{ spec: BackupPolicySpec; vmIds: string[]; scheduleId: string }> {
      const doc = await inv.backupPolicies.findOne({ _id: req.name });
      if (!doc) throw new NotFoundError('backup policy', req.name);
      const spec = parseInput(backupPolicySchema, doc.spec, 'policy');
      const vmIds = req.specOnly ? [] : await selectedVmIds(spec);
      return { spec, vmIds, scheduleId: doc.scheduleId };
    },

    /**
     * One page of the VMs a policy selects now, by id after `after`, so a run never carries the
     * whole selection: `next` is the id to continue after, absent on the last page.
     */
    async policyVmPage(req: {
      selector: PolicySelector;
      /** The policy run's workflow id: its selection is read once and paged from memory. */
      run: string;
      after?: string;
      limit: number;
    }): Promise<{ vmIds: string[]; next?: string }> {
      const all = await snapshots.get('policy-selection', req.run, () => selectedVmIds(req.selector));
      const { page, next } = pageAfter(all, (id) => id, req.after, req.limit);
      return { vmIds: page, next };
    },

    /** The newest good backup of each VM whose verification is older than `olderThanHours`. */
    async backupsDueForVerification(req: {
      vmIds: string[];
      olderThanHours: number;
    }): Promise<{ vmId: string; backupId: string }[]> {
      const cutoff = new Date(Date.now() - req.olderThanHours * 3_600_000);
      const due: { vmId: string; backupId: string }[] = [];
      const newest = await newestGoodBackups(req.vmIds);
      for (const vmId of req.vmIds) {
        const b = newest.get(vmId);
        if (b && (!b.verifiedAt || b.verifiedAt < cutoff)) due.push({ vmId, backupId: b._id });
      }
      return due;
    },

    /**
     * Records how a run went, from every VM's outcome (a run in one history) or from the tally
     * of a run that continued as new page by page. A run with any failure counts towards the
     * policy's failure streak; at `pauseAfterFailures` the schedule is paused with the reason as
     * its note. Given `results`, VMs with no good backup for `alertAfterHours` are reported here;
     * a paged run reports them page by page (reportStaleBackups).
     */
    async recordPolicyRun(req: {
      name: string;
      results?: PolicyRunResult[];
      tally?: PolicyTally;
    }): Promise<{ paused: boolean; stale: string[] }> {
      const doc = await inv.backupPolicies.findOne({ _id: req.name });
      if (!doc) throw new NotFoundError('backup policy', req.name);
      const spec = parseInput(backupPolicySchema, doc.spec, 'policy');
      const tally = req.tally ?? tallyResults(emptyTally(), req.results ?? []);
      const failed = tally.notCompleted.filter((r) => r.outcome === 'failed');
      const streak = tally.failed > 0 ? doc.consecutiveFailures + 1 : 0;
      const summary = `${tally.completed} completed, ${tally.failed} failed, ${tally.skipped} skipped`;
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
        outcome: tally.failed > 0 ? 'failed' : 'completed',
        message: `policy ${req.name}: ${req.results ? `${summary}${failed.map((f) => `; ${f.vmId}: ${f.reason}`).join('')}` : describeTally(tally)}`,
        details: req.results ? { results: req.results } : { tally },
        ...currentRun(),
      });
      let paused = false;
      if (streak >= spec.pauseAfterFailures) {
        const note = `paused by virtflow after ${streak} consecutive failed runs; last: ${failed.map((f) => `${f.vmId}: ${f.reason}`).join('; ')}`;
        await (await client()).schedule.getHandle(doc.scheduleId).pause(note.slice(0, 500));
        paused = true;
      }
      const stale = req.results
        ? await reportStale(
            req.name,
            req.results.map((r) => r.vmId),
            spec.alertAfterHours,
          )
        : [];
      return { paused, stale };
    },

    /** VMs of one page of a policy run with no good backup for `alertAfterHours`: each raises an audit event. */
    async reportStaleBackups(req: {
      name: string;
      vmIds: string[];
      alertAfterHours: number;
    }): Promise<string[]> {
      return reportStale(req.name, req.vmIds, req.alertAfterHours);
    },
  };

  /**
   * The newest good backup of each of these VMs, in one query: FerretDB reads the whole
   * catalogue for any filter but `_id`, so a query per VM read it 500 times a page.
   */
  async function newestGoodBackups(vmIds: string[]): Promise<Map<string, BackupDoc>> {
    const newest = new Map<string, BackupDoc>();
    if (vmIds.length === 0) return newest;
    for (const b of await inv.backups.find({ vmId: { $in: vmIds }, state: 'good' }).toArray()) {
      const kept = newest.get(b.vmId);
      if (!kept || (b.finishedAt ?? 0) > (kept.finishedAt ?? 0)) newest.set(b.vmId, b);
    }
    return newest;
  }

  async function reportStale(policy: string, vmIds: string[], alertAfterHours: number): Promise<string[]> {
    const stale: string[] = [];
    const cutoff = new Date(Date.now() - alertAfterHours * 3_600_000);
    const newest = await newestGoodBackups(vmIds);
    for (const vmId of vmIds) {
      const finishedAt = newest.get(vmId)?.finishedAt;
      if (finishedAt && finishedAt >= cutoff) continue;
      stale.push(vmId);
      await recordEvent(inv, {
        operation: 'backup-freshness',
        subject: `vm/${vmId}`,
        outcome: 'failed',
        message: `no successful backup of vm ${vmId} within ${alertAfterHours} hours (policy ${policy})`,
        ...currentRun(),
      });
    }
    return stale;
  }
}
