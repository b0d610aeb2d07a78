import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ContinueAsNew,
  continueAsNew,
  executeChild,
  ParentClosePolicy,
  patched,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { BackupPolicySpec } from '../domain/backup';
import {
  describeTally,
  emptyTally,
  tallyResults,
  type PolicyRunResult,
  type PolicyTally,
} from '../domain/policy-tally';
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
/**
 * Runs begun before selection by pages carried the whole selection and every outcome through
 * continue-as-new (over 2 MB at 50,000 VMs); from it on, a run carries a cursor and a tally.
 */
const PAGES_BY_CURSOR = 'backup-pages-by-cursor';

/** What a policy run carried into its next run before PAGES_BY_CURSOR. */
interface ListCarried {
  spec: BackupPolicySpec;
  /** The VMs still to back up. */
  vmIds: string[];
  /** Every VM's outcome so far. */
  results: PolicyRunResult[];
}

/** What a policy run carries into its next run: nothing that grows with the fleet. */
interface PageCarried {
  spec: BackupPolicySpec;
  /** The last VM id selected so far: the next run selects the VMs after it. */
  after: string;
  tally: PolicyTally;
}

export type BackupRunCarried = ListCarried | PageCarried;

export interface PolicyRunOutcome {
  /**
   * Every VM's outcome when the policy fitted one run; for a larger one, the first VMs that did
   * not complete (the tally has the counts).
   */
  results: PolicyRunResult[];
  tally?: PolicyTally;
  paused: boolean;
}

/**
 * One run of a backup policy, started by its Temporal Schedule: a child `backupVm` per selected
 * VM (as `vm/<vmId>`, so a VM busy with another operation is reported skipped, never silently
 * missed), at most `maxParallel` at once, each pruning by the policy's retention; then backups
 * due are verified again, VMs without a fresh backup reported, and the run recorded, its
 * failure streak checked. The VMs are selected `chunk` at a time by id; after each page the run
 * continues as new with a cursor and a tally, so neither a history nor a payload grows with the
 * fleet.
 */
export async function scheduledBackup(req: {
  policy: string;
  /** VMs per run before continuing as new (tests make it small). */
  chunk?: number;
  carried?: BackupRunCarried;
}): Promise<PolicyRunOutcome> {
  const op = trackOperation({ operation: 'scheduled-backup' });
  try {
    const byList = req.carried ? 'vmIds' in req.carried : !patched(PAGES_BY_CURSOR);
    return byList ? await backUpList(req, op) : await backUpPage(req, op);
  } catch (err) {
    if (err instanceof ContinueAsNew) throw err;
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}

type Op = ReturnType<typeof trackOperation>;

/** One page of the selection: back it up, verify and report it, then continue or record the run. */
async function backUpPage(
  req: { policy: string; chunk?: number; carried?: BackupRunCarried },
  op: Op,
): Promise<PolicyRunOutcome> {
  const carried = req.carried as PageCarried | undefined;
  const spec = carried?.spec ?? (await inventory.loadBackupPolicy({ name: req.policy, specOnly: true })).spec;
  const chunk = req.chunk ?? FAN_OUT_CHUNK;
  const page = await inventory.policyVmPage({
    selector: { vmIds: spec.vmIds, vmLabels: spec.vmLabels, project: spec.project },
    run: workflowInfo().workflowId,
    after: carried?.after,
    limit: chunk,
  });
  const before = carried?.tally ?? emptyTally();
  const done = before.completed + before.failed + before.skipped;
  const progress = (n: number) =>
    `policy ${req.policy}: ${done + n} done${page.next ? ', more to come' : ''}`;
  op.phase('backing-up', `policy ${req.policy}: ${page.vmIds.length} VM(s), ${spec.maxParallel} at a time`);
  const results = await backUpAll(page.vmIds, req.policy, spec, (n) => op.phase('backing-up', progress(n)));
  results.push(...(await reverify(results, spec, op)));
  await inventory.reportStaleBackups({
    name: req.policy,
    vmIds: page.vmIds,
    alertAfterHours: spec.alertAfterHours,
  });
  const tally = tallyResults(before, results);
  if (page.next)
    await continueAsNew<typeof scheduledBackup>({
      policy: req.policy,
      chunk: req.chunk,
      carried: { spec, after: page.next, tally },
    });
  const { paused } = await inventory.recordPolicyRun({ name: req.policy, tally });
  op.phase('done', `policy ${req.policy}: ${describeTally(tally)}`);
  return { results: carried ? tally.notCompleted : results, tally, paused };
}

/** The selection as one list (runs begun before PAGES_BY_CURSOR, and their continuations). */
async function backUpList(
  req: { policy: string; chunk?: number; carried?: BackupRunCarried },
  op: Op,
): Promise<PolicyRunOutcome> {
  const carried = req.carried as ListCarried | undefined;
  const { spec, vmIds } = carried ?? (await inventory.loadBackupPolicy({ name: req.policy }));
  const results: PolicyRunResult[] = [...(carried?.results ?? [])];
  const chunk = req.chunk ?? FAN_OUT_CHUNK;
  const inChunks = vmIds.length > chunk && (carried !== undefined || patched(FAN_OUT_IN_CHUNKS));
  const batch = inChunks ? vmIds.slice(0, chunk) : vmIds;
  const total = results.length + vmIds.length;
  op.phase('backing-up', `policy ${req.policy}: ${total} VM(s), ${spec.maxParallel} at a time`);
  const before = results.length;
  results.push(
    ...(await backUpAll(batch, req.policy, spec, (n) =>
      op.phase('backing-up', `policy ${req.policy}: ${before + n}/${total} done`),
    )),
  );
  if (batch.length < vmIds.length)
    await continueAsNew<typeof scheduledBackup>({
      policy: req.policy,
      chunk: req.chunk,
      carried: { spec, vmIds: vmIds.slice(batch.length), results },
    });
  results.push(...(await reverify(results, spec, op)));
  const { paused } = await inventory.recordPolicyRun({ name: req.policy, results });
  op.phase('done', `policy ${req.policy}: ${describeResults(results)}`);
  return { results, paused };
}

/** Backs these VMs up, `maxParallel` at a time; `onDone` hears how many have finished. */
async function backUpAll(
  vmIds: string[],
  policy: string,
  spec: BackupPolicySpec,
  onDone: (n: number) => void,
): Promise<PolicyRunResult[]> {
  const results: PolicyRunResult[] = [];
  const queue = [...vmIds];
  const worker = async () => {
    for (let vmId = queue.shift(); vmId; vmId = queue.shift()) {
      results.push(await backupOne(vmId, policy, spec));
      onDone(results.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.maxParallel, vmIds.length) }, worker));
  return results;
}

/** Backups verified long ago are checked again (a file can rot after it was written): the failures. */
async function reverify(
  results: PolicyRunResult[],
  spec: BackupPolicySpec,
  op: Op,
): Promise<PolicyRunResult[]> {
  const failed: PolicyRunResult[] = [];
  for (const { vmId, backupId } of await inventory.backupsDueForVerification({
    vmIds: results.map((r) => r.vmId),
    olderThanHours: spec.reverifyAfterHours,
  })) {
    op.phase('verifying', `re-verifying ${backupId}`);
    await executeChild(verifyBackup, {
      workflowId: `backup/${backupId}/verify`,
      args: [{ backupId }],
    }).catch((err: unknown) =>
      failed.push({ vmId, outcome: 'failed', reason: `verification of ${backupId}: ${reasonOf(err)}` }),
    );
  }
  return failed;
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
