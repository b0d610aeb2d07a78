import {
  condition,
  continueAsNew,
  ParentClosePolicy,
  patched,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { searchAttributes, workflowIds } from '../domain/names';
import { batchSize, type HostRolloutState, type RolloutRequest, type RolloutSpec } from '../domain/rollout';
import { inventory } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { patchHost } from './patch-host';
import {
  abortRollout,
  hostPatchEnded,
  pauseRollout,
  resumeRollout,
  retryHost,
  rolloutProgress,
  skipHost,
  type HostPatchReport,
  type RolloutProgress,
} from './rollout-control';

/** Runs begun before patch reports carried the reporting run's id accept any run's report. */
const REPORTS_CARRY_RUN_ID = 'patch-report-run-id';

const OUTCOMES: HostPatchReport['outcome'][] = ['patched', 'skipped', 'failed'];

/** A well-formed report; a signal's payload is whatever its sender chose. */
function isPatchReport(r: HostPatchReport): boolean {
  return (
    typeof r === 'object' &&
    Number.isInteger(r.attempt) &&
    OUTCOMES.includes(r.outcome) &&
    (r.reason === undefined || typeof r.reason === 'string')
  );
}

interface HostEntry {
  hostId: string;
  state: HostRolloutState;
  attempts: number;
  reason?: string;
  /** The `host/<id>` run of the current attempt, and how it ended once it has. */
  runId?: string;
  ended?: HostPatchReport;
}

/** What survives a continue-as-new: the plan and every host's state. */
interface Carried {
  spec: RolloutSpec;
  hosts: HostEntry[];
  paused: boolean;
  aborted: boolean;
}

/**
 * Patches a cluster host by host (`rollout/<name>`): canaries first, one at a time, then a
 * sliding window of at most max-unavailable hosts (a new host starts when one returns, after a
 * capacity re-check), each host patched by a child `patchHost` with retries. Failures beyond the budget halt the rollout
 * until an operator skips or retries hosts and resumes. `pause` takes effect after the current
 * step; `abort` starts nothing new and lets hosts in progress finish. The history is kept small
 * with continue-as-new, which carries hosts in flight over without waiting for them.
 */
export async function rollingPatch(request: RolloutRequest, carried?: Carried): Promise<RolloutProgress> {
  // Answer `progress` from the first moment, before the plan exists.
  setHandler(rolloutProgress, () => ({
    operation: 'rolling-patch',
    phase: 'planning',
    message: `planning rollout ${request.name}`,
    paused: false,
    aborted: false,
    failures: 0,
    hosts: [],
  }));
  let state: Carried;
  if (carried) state = carried;
  else {
    try {
      const plan = await inventory.planRollout(request);
      state = {
        spec: plan.spec,
        hosts: plan.hosts.map((hostId) => ({ hostId, state: 'pending', attempts: 0 })),
        paused: false,
        aborted: false,
      };
    } catch (err) {
      throw operatorFailure(err);
    }
  }
  const { spec } = state;
  let phase = 'running';
  let message = `patching ${state.hosts.length} host(s) with ${spec.patch}`;
  let waitingFor: string | undefined;
  const failures = () => state.hosts.filter((h) => h.state === 'failed').length;
  const progress = (): RolloutProgress => ({
    operation: 'rolling-patch',
    phase,
    message,
    waitingFor,
    paused: state.paused,
    aborted: state.aborted,
    failures: failures(),
    hosts: state.hosts.map(({ hostId, state: s, attempts, reason }) => ({
      hostId,
      state: s,
      attempts,
      reason,
    })),
  });
  let indexedPhase: string | undefined;
  const report = (p: string, m: string, waiting?: string) => {
    phase = p;
    message = m;
    waitingFor = waiting;
    // Each upsert is a history event: index the phase only when it changes.
    if (p !== indexedPhase) upsertSearchAttributes([{ key: searchAttributes.phase, value: p }]);
    indexedPhase = p;
    setCurrentDetails(
      `**${p}**: ${m}${waiting ? `\n\nwaiting for: ${waiting}` : ''}\n\n` +
        state.hosts.map((h) => `- ${h.hostId}: ${h.state}${h.reason ? ` (${h.reason})` : ''}`).join('\n'),
    );
  };
  upsertSearchAttributes([
    { key: searchAttributes.operation, value: 'rolling-patch' },
    // Temporal caps a search attribute value at 2 KB: a large fleet is found by its cluster instead.
    ...(state.hosts.map((h) => h.hostId).join().length <= 1500
      ? [{ key: searchAttributes.hosts, value: state.hosts.map((h) => h.hostId) }]
      : []),
    ...(spec.cluster ? [{ key: searchAttributes.cluster, value: spec.cluster }] : []),
  ]);
  setHandler(rolloutProgress, progress);
  const entry = (hostId: string) => state.hosts.find((h) => h.hostId === hostId);
  setHandler(pauseRollout, async () => ((state.paused = true), 'paused after the current step'), {
    validator: () => {
      if (state.aborted) throw new Error('the rollout is aborted');
      if (state.paused) throw new Error('the rollout is already paused');
    },
  });
  setHandler(resumeRollout, async () => ((state.paused = false), 'resumed'), {
    validator: () => {
      if (!state.paused && failures() <= spec.failureBudget)
        throw new Error('the rollout is neither paused nor halted');
      if (failures() > spec.failureBudget)
        throw new Error(
          `${failures()} host(s) failed, over the budget of ${spec.failureBudget}: skip or retry them first`,
        );
    },
  });
  setHandler(abortRollout, async () => ((state.aborted = true), 'aborting: no new host will start'), {
    validator: () => {
      if (state.aborted) throw new Error('the rollout is already aborted');
    },
  });
  setHandler(
    skipHost,
    async ({ hostId }) => {
      const h = entry(hostId)!;
      h.state = 'skipped';
      h.reason = 'skipped by an operator';
      return `${hostId} skipped`;
    },
    {
      validator: ({ hostId }) => {
        const h = entry(hostId);
        if (!h) throw new Error(`hostId: ${hostId} is not part of this rollout`);
        if (h.state !== 'pending' && h.state !== 'failed')
          throw new Error(`${hostId} is ${h.state}; only pending or failed hosts can be skipped`);
      },
    },
  );
  setHandler(
    retryHost,
    async ({ hostId }) => {
      const h = entry(hostId)!;
      h.state = 'pending';
      h.attempts = 0;
      h.reason = undefined;
      return `${hostId} will be retried`;
    },
    {
      validator: ({ hostId }) => {
        const h = entry(hostId);
        if (!h) throw new Error(`hostId: ${hostId} is not part of this rollout`);
        if (h.state !== 'failed')
          throw new Error(`${hostId} is ${h.state}; only failed hosts can be retried`);
      },
    },
  );

  // Each host's `host/<id>` run reports its end by signal, and a run started before a
  // continue-as-new reports to the run after it: the window never has to drain.
  // Anyone can signal a workflow: a report counts only for one of this rollout's hosts, for
  // its current attempt, and from the very run the rollout started for it (runs begun before
  // reports carried their run id only check the host and attempt).
  const checkReporter = patched(REPORTS_CARRY_RUN_ID);
  const early = new Map<string, HostPatchReport>();
  const accept = (h: HostEntry, r: HostPatchReport) => {
    if (h.state !== 'patching' || r.attempt !== h.attempts) return;
    if (checkReporter && r.runId !== h.runId) return;
    h.ended ??= { hostId: h.hostId, attempt: r.attempt, outcome: r.outcome, reason: r.reason };
  };
  setHandler(hostPatchEnded, (r) => {
    const h = entry(r?.hostId);
    if (!h || !isPatchReport(r)) return;
    // A child may report before its start has reached this run: kept until its run id is known.
    if (checkReporter && h.state === 'patching' && h.runId === undefined) early.set(h.hostId, r);
    else accept(h, r);
  });
  let starting = 0;
  /** Patches one host, with retries; `resumed` follows a run an earlier run of the rollout started. */
  const patchOne = async (h: HostEntry, resumed = false) => {
    h.state = 'patching';
    for (;;) {
      if (!resumed) {
        h.attempts++;
        h.ended = undefined;
        h.runId = undefined;
        const attempt = h.attempts;
        const ended = (r: Omit<HostPatchReport, 'hostId' | 'attempt'>) => {
          if (h.attempts === attempt) h.ended ??= { ...r, hostId: h.hostId, attempt };
        };
        starting++;
        try {
          // Abandoned, not terminated, when this run continues as new: the next run follows it.
          const child = await startChild(patchHost, {
            workflowId: workflowIds.host(h.hostId),
            args: [
              {
                hostId: h.hostId,
                patch: spec.patch,
                reportTo: { workflowId: workflowInfo().workflowId, attempt },
              },
            ],
            parentClosePolicy: ParentClosePolicy.ABANDON,
            staticSummary: `Patch ${h.hostId} with ${spec.patch} (rollout ${spec.name})`,
          });
          h.runId = child.firstExecutionRunId;
          const reported = early.get(h.hostId);
          early.delete(h.hostId);
          if (reported) accept(h, reported);
          // Within this run the child's own end also counts: one terminated by hand never reports.
          child.result().then(
            (r) => ended({ outcome: r.outcome, reason: r.reason }),
            (err: unknown) =>
              ended({ outcome: 'failed', reason: reasonOf((err as { cause?: unknown }).cause ?? err) }),
          );
        } catch (err) {
          ended({ outcome: 'failed', reason: reasonOf(err) });
        } finally {
          starting--;
        }
      }
      resumed = false;
      await condition(() => h.ended !== undefined);
      const { outcome, reason } = h.ended!;
      h.reason = reason;
      if (outcome !== 'failed') {
        h.state = outcome;
        return;
      }
      if (h.attempts > spec.retriesPerHost) {
        h.state = 'failed';
        return;
      }
      report('retrying', `${h.hostId} failed (${reason}); retrying in ${spec.retryDelaySec} s`);
      await sleep(`${spec.retryDelaySec} seconds`);
    }
  };

  /**
   * Hosts an earlier run started report to this one; should a run end without reporting
   * (terminated by hand), this look at their runs every minute notices it.
   */
  const followEarlierRuns = async (hosts: HostEntry[]) => {
    for (;;) {
      const open = hosts.filter((h) => h.state === 'patching' && !h.ended && h.runId);
      if (open.length === 0) return;
      await condition(() => open.every((h) => h.ended), '1 minute');
      const ended = await inventory.endedPatchRuns({
        runs: open.filter((h) => !h.ended).map((h) => ({ hostId: h.hostId, runId: h.runId! })),
      });
      for (const e of ended) {
        const h = entry(e.hostId);
        if (h?.runId === e.runId)
          h.ended ??= { hostId: e.hostId, attempt: h.attempts, outcome: e.outcome, reason: e.reason };
      }
    }
  };

  // A sliding window: a host starts as soon as one finishes, never more than `size` out at once.
  const size = batchSize(spec.maxUnavailable, state.hosts.length);
  const inFlight = new Set<string>();
  let finished = 0;
  const start = (h: HostEntry, resumed = false) => {
    inFlight.add(h.hostId);
    void patchOne(h, resumed).finally(() => {
      inFlight.delete(h.hostId);
      finished++;
    });
  };
  // Hosts in flight when the last run continued as new: follow them where they are.
  const carriedInFlight = state.hosts.filter((h) => h.state === 'patching');
  for (const h of carriedInFlight) start(h, true);
  void followEarlierRuns(carriedInFlight);
  /** Waits until a host in flight finishes, or an operator changes something. */
  const nextChange = async () => {
    const seen = { finished, paused: state.paused, aborted: state.aborted };
    await condition(
      () => finished !== seen.finished || state.paused !== seen.paused || state.aborted !== seen.aborted,
    );
  };
  const historyFull = () =>
    workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > spec.historyLimit;

  for (;;) {
    // Gates before anything new starts: the failure budget, an operator's pause, an abort.
    if (failures() > spec.failureBudget && !state.paused) {
      report(
        'halted',
        `${failures()} host(s) failed, over the budget of ${spec.failureBudget}`,
        'an operator to skip or retry the failed hosts, then resume',
      );
      state.paused = true;
    }
    const pending = state.hosts.filter((h) => h.state === 'pending');
    if (state.aborted || pending.length === 0) {
      if (inFlight.size === 0) break;
      report(state.aborted ? 'aborting' : phase, message, `${[...inFlight].join(', ')} to finish`);
      await nextChange();
      continue;
    }
    if (state.paused) {
      // A pause takes effect once the hosts in flight are back: until then it is only pausing.
      if (inFlight.size > 0) {
        if (phase !== 'halted')
          report('pausing', 'pausing: no new host starts', `${[...inFlight].join(', ')} to finish`);
        await nextChange();
        continue;
      }
      if (phase !== 'halted') report('paused', 'paused by an operator', 'resume');
      await condition(() => !state.paused || state.aborted);
      continue;
    }
    // Keep the history small on large fleets: the state, hosts in flight included, goes on in a
    // fresh run. Only a child start still waiting for its run id holds it back.
    if (historyFull()) {
      await condition(() => starting === 0);
      await continueAsNew<typeof rollingPatch>(request, state);
    }
    const canary = state.hosts.filter((h) => h.state === 'patched').length < spec.canaryHosts;
    // Canaries go alone: nothing else starts until they are back in service.
    if (inFlight.size >= (canary ? 1 : size)) {
      await nextChange();
      continue;
    }
    if (canary && inFlight.size > 0) {
      await nextChange();
      continue;
    }
    const candidate = pending[0];
    const { fits, reason } = await inventory.fitBatch({ batch: [candidate.hostId], busy: [...inFlight] });
    if (fits.length === 0) {
      if (inFlight.size > 0) {
        // Hosts coming back will make room.
        report('waiting', `capacity: ${reason}`, 'a host in flight to return');
        await nextChange();
        continue;
      }
      report('halted', `capacity: ${reason}`, "capacity to move the next host's VMs, then resume");
      state.paused = true;
      continue;
    }
    start(candidate);
    report(
      canary ? 'canary' : 'rolling',
      `patching ${[...inFlight].join(', ')} (${inFlight.size} of at most ${canary ? 1 : size} out)`,
    );
  }
  const done = state.hosts.filter((h) => h.state === 'patched').length;
  report(
    state.aborted ? 'aborted' : 'done',
    `${done} of ${state.hosts.length} host(s) patched${state.aborted ? ' before the abort' : ''}`,
  );
  return progress();
}
