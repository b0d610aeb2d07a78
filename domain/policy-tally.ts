/** How one VM fared in a run of a backup policy. */
export interface PolicyRunResult {
  vmId: string;
  outcome: 'completed' | 'failed' | 'skipped';
  reason?: string;
  backupId?: string;
}

/**
 * How a policy run went, in a size that does not grow with the fleet: counts by outcome and the
 * first VMs that did not complete (their reasons are what an operator reads first). A run over
 * many VMs carries this through continue-as-new instead of every VM's outcome.
 */
export interface PolicyTally {
  completed: number;
  failed: number;
  skipped: number;
  /** The first NOT_COMPLETED_KEPT outcomes that were not `completed`. */
  notCompleted: PolicyRunResult[];
}

export const NOT_COMPLETED_KEPT = 20;

export const emptyTally = (): PolicyTally => ({ completed: 0, failed: 0, skipped: 0, notCompleted: [] });

/** The tally with these outcomes added. */
export function tallyResults(tally: PolicyTally, results: PolicyRunResult[]): PolicyTally {
  const next = { ...tally, notCompleted: [...tally.notCompleted] };
  for (const r of results) {
    next[r.outcome]++;
    if (r.outcome !== 'completed' && next.notCompleted.length < NOT_COMPLETED_KEPT) next.notCompleted.push(r);
  }
  return next;
}

/** One line for the operator: counts, then the first VMs that did not complete and why. */
export function describeTally(t: PolicyTally): string {
  const total = t.completed + t.failed + t.skipped;
  if (total === 0) return 'no VMs selected';
  const missing = t.failed + t.skipped - t.notCompleted.length;
  return (
    `${t.completed} of ${total} completed, ${t.failed} failed, ${t.skipped} skipped` +
    t.notCompleted.map((r) => `; ${r.vmId} ${r.outcome}${r.reason ? `: ${r.reason}` : ''}`).join('') +
    (missing > 0 ? `; and ${missing} more` : '')
  );
}
