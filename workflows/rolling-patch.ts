import {
  condition,
  continueAsNew,
  executeChild,
  setCurrentDetails,
  setHandler,
  sleep,
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
  pauseRollout,
  resumeRollout,
  retryHost,
  rolloutProgress,
  skipHost,
  type RolloutProgress,
} from './rollout-control';

interface HostEntry {
  hostId: string;
  state: HostRolloutState;
  attempts: number;
  reason?: string;
}

/** What survives a continue-as-new: the plan and every host's state. */
interface Carried {
  spec: RolloutSpec;
  hosts: HostEntry[];
  paused: boolean;
  aborted: boolean;
}

/**
 * Patches a cluster host by host (`rollout/<name>`): canaries first, one at a time, then
 * batches no larger than max-unavailable, each re-checked for capacity before it starts, each
 * host patched by a child `patchHost` with retries. Failures beyond the budget halt the rollout
 * until an operator skips or retries hosts and resumes. `pause` takes effect after the current
 * step; `abort` starts nothing new and lets hosts in progress finish. The history is kept small
 * with continue-as-new.
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
    hosts: state.hosts.map((h) => ({ ...h })),
  });
  const report = (p: string, m: string, waiting?: string) => {
    phase = p;
    message = m;
    waitingFor = waiting;
    upsertSearchAttributes([{ key: searchAttributes.phase, value: p }]);
    setCurrentDetails(
      `**${p}**: ${m}${waiting ? `\n\nwaiting for: ${waiting}` : ''}\n\n` +
        state.hosts.map((h) => `- ${h.hostId}: ${h.state}${h.reason ? ` (${h.reason})` : ''}`).join('\n'),
    );
  };
  upsertSearchAttributes([
    { key: searchAttributes.operation, value: 'rolling-patch' },
    { key: searchAttributes.hosts, value: state.hosts.map((h) => h.hostId) },
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

  const patchOne = async (h: HostEntry) => {
    h.state = 'patching';
    for (;;) {
      h.attempts++;
      try {
        const r = await executeChild(patchHost, {
          workflowId: workflowIds.host(h.hostId),
          args: [{ hostId: h.hostId, patch: spec.patch }],
          staticSummary: `Patch ${h.hostId} with ${spec.patch} (rollout ${spec.name})`,
        });
        h.state = r.outcome === 'patched' ? 'patched' : 'skipped';
        h.reason = r.reason;
        return;
      } catch (err) {
        h.reason = reasonOf((err as { cause?: unknown }).cause ?? err);
        if (h.attempts > spec.retriesPerHost) {
          h.state = 'failed';
          return;
        }
        report('retrying', `${h.hostId} failed (${h.reason}); retrying in ${spec.retryDelaySec} s`);
        await sleep(`${spec.retryDelaySec} seconds`);
      }
    }
  };

  const size = batchSize(spec.maxUnavailable, state.hosts.length);
  for (;;) {
    // Gates before anything new starts: an operator's pause, the failure budget, an abort.
    if (failures() > spec.failureBudget) {
      report(
        'halted',
        `${failures()} host(s) failed, over the budget of ${spec.failureBudget}`,
        'an operator to skip or retry the failed hosts, then resume',
      );
      state.paused = true;
    }
    if (state.paused && !state.aborted) {
      if (phase !== 'halted') report('paused', 'paused by an operator', 'resume');
      await condition(() => !state.paused || state.aborted);
    }
    if (state.aborted) break;
    const pending = state.hosts.filter((h) => h.state === 'pending');
    if (pending.length === 0) break;
    const patchedSoFar = state.hosts.filter((h) => h.state === 'patched').length;
    const wanted = pending.slice(0, patchedSoFar < spec.canaryHosts ? 1 : size);
    const { fits, reason } = await inventory.fitBatch({
      batch: wanted.map((h) => h.hostId),
      all: state.hosts.map((h) => h.hostId),
    });
    if (fits.length === 0) {
      report('halted', `capacity: ${reason}`, "capacity to move the next host's VMs, then resume");
      state.paused = true;
      continue;
    }
    const batch = wanted.filter((h) => fits.includes(h.hostId));
    report(
      patchedSoFar < spec.canaryHosts ? 'canary' : 'batch',
      `patching ${batch.map((h) => h.hostId).join(', ')}`,
    );
    await Promise.all(batch.map(patchOne));
    // Keep the parent's history small on large fleets: carry the state into a fresh run.
    if (workflowInfo().continueAsNewSuggested) await continueAsNew<typeof rollingPatch>(request, state);
  }
  const done = state.hosts.filter((h) => h.state === 'patched').length;
  report(
    state.aborted ? 'aborted' : 'done',
    `${done} of ${state.hosts.length} host(s) patched${state.aborted ? ' before the abort' : ''}`,
  );
  return progress();
}
