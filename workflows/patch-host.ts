import {
  ApplicationFailure,
  CancellationScope,
  getExternalWorkflowHandle,
  workflowInfo,
} from '@temporalio/workflow';
import { patchHostSchema, PREFLIGHT_SKIP, type PatchHostRequest } from '../domain/patch';
import { inventory, onHost } from './activity-proxies';
import { evacuateHost } from './enter-maintenance';
import { returnToService } from './exit-maintenance';
import { isFailureOfType, operatorFailure, parseWorkflowInput, reasonOf } from './failures';
import { trackOperation } from './observability';
import { hostPatchEnded, type HostPatchReport } from './rollout-control';

export interface PatchHostResult {
  hostId: string;
  patch: string;
  outcome: 'patched' | 'skipped';
  reason?: string;
  version?: string;
  moved: { vmId: string; to: string }[];
  canaryBootMs?: number;
}

/**
 * Patches one host (`host/<hostId>`): pre-flight, maintenance (its VMs live-migrated off), the
 * patch run by the host's agent with a timeout, a restart of the agent, a wait until the host is
 * back reporting the new patch level, a health check (the agent answers and a canary guest
 * boots), the post check, then back to service. A failed step leaves the host in maintenance,
 * visibly blocked with the step's output: it never returns to service unpatched-but-unknown.
 * Started by a rollout, it signals its outcome to the rollout's current run (`reportTo`).
 */
export async function patchHost(input: PatchHostRequest): Promise<PatchHostResult> {
  const request = parseWorkflowInput(patchHostSchema, input);
  const report = async (r: Omit<HostPatchReport, 'hostId' | 'attempt'>) => {
    if (!request.reportTo) return;
    const { workflowId, attempt } = request.reportTo;
    // Even a cancelled patch reports; a rollout that has ended meanwhile is nobody to tell.
    await CancellationScope.nonCancellable(() =>
      getExternalWorkflowHandle(workflowId)
        .signal(hostPatchEnded, { ...r, hostId: request.hostId, attempt, runId: workflowInfo().runId })
        .catch(() => undefined),
    );
  };
  try {
    const result = await patchSteps(request);
    await report({ outcome: result.outcome, reason: result.reason });
    return result;
  } catch (err) {
    await report({ outcome: 'failed', reason: reasonOf(err) });
    throw err;
  }
}

async function patchSteps(request: PatchHostRequest): Promise<PatchHostResult> {
  const { hostId, patch } = request;
  const op = trackOperation({ operation: 'patch-host', hosts: [hostId] });
  const agent = onHost(hostId);
  const def = await agent.readPatch({ name: patch }).catch((err: unknown) => {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  });
  const base = { hostId, patch, version: def.version, moved: [] };
  if (def.currentLevel === def.version) {
    op.phase('skipped', `${hostId} is already at ${def.version}`);
    return { ...base, outcome: 'skipped', reason: `already at ${def.version}` };
  }
  op.phase('preflight', `pre-flight of ${patch} on ${hostId}`);
  const pre = await agent.runPatchStep({ name: patch, step: 'preflight' });
  if (pre.exitCode === PREFLIGHT_SKIP) {
    op.phase('skipped', `pre-flight says skip: ${pre.output}`);
    return { ...base, outcome: 'skipped', reason: pre.output || 'pre-flight asked to skip' };
  }
  if (pre.exitCode !== 0) {
    op.phase('failed', `pre-flight failed: ${pre.output}`);
    throw ApplicationFailure.nonRetryable(
      `pre-flight of ${patch} failed on ${hostId}: ${pre.output}`,
      'PatchFailedError',
    );
  }

  const evacuation = await evacuateHost(op, { hostId, preferPatchLevel: def.version });
  /** A failed step: the host stays in maintenance, blocked, with the reason for the operator. */
  const fail = async (what: string, detail: string): Promise<never> => {
    // One line for the operator: the step's output lines joined.
    const reason = `${what} of ${patch} failed: ${detail.split('\n').join(' / ')}`;
    op.phase('failed', reason);
    await inventory.setMaintenanceState({ hostId, state: 'blocked', reason });
    throw ApplicationFailure.nonRetryable(`${reason} (${hostId} left in maintenance)`, 'PatchFailedError');
  };
  try {
    op.phase('applying', `running ${patch} on ${hostId} (timeout ${def.timeoutSec} s)`);
    const apply = await onHost(hostId, {
      startToCloseTimeout: `${def.timeoutSec + 60} seconds`,
      heartbeatTimeout: '10 seconds',
    }).runPatchStep({ name: patch, step: 'apply' });
    if (apply.timedOut) await fail('apply', `no result within ${def.timeoutSec} s; output: ${apply.output}`);
    if (apply.exitCode !== 0) await fail('apply', `exit ${apply.exitCode}: ${apply.output}`);

    op.phase('restarting', `restarting the hypervisor service (agent) on ${hostId}`);
    const { pid } = await agent.restartAgent();
    await inventory.waitForAgentRestart({
      hostId,
      previousPid: pid,
      expectedLevel: def.version,
      timeoutMs: (request.restartTimeoutSec ?? 120) * 1000,
    });

    op.phase(
      'health-check',
      `checking ${hostId}: agent, QEMU${request.canary === false ? '' : ', canary guest'}`,
    );
    await agent.reportHost();
    const canary =
      request.canary === false
        ? undefined
        : await onHost(hostId, {
            startToCloseTimeout: '3 minutes',
            heartbeatTimeout: '15 seconds',
          }).bootCanary({ timeoutMs: 120_000 });

    const post = await agent.runPatchStep({ name: patch, step: 'post' });
    if (post.exitCode !== 0) await fail('post check', post.output);
    await returnToService(op, { hostId, migrateBack: false });
    op.phase('done', `${hostId} patched to ${def.version} and back in service`);
    return { ...base, outcome: 'patched', moved: evacuation.moved, canaryBootMs: canary?.bootMs };
  } catch (err) {
    if (isFailureOfType(err, 'PatchFailedError')) throw err;
    return fail('the patch run', reasonOf(err));
  }
}
