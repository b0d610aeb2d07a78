import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  ParentClosePolicy,
  patched,
  proxyActivities,
  sleep,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ControllerActivities } from '../activities/controller/controller-activities';
import { fenceRequestSchema, restartWaves, type FenceRequest } from '../domain/ha';
import { inventory, onHost } from './activity-proxies';
import { operatorFailure, parseWorkflowInput, reasonOf } from './failures';
import { placeAndClaim } from './place-and-claim';
import { trackOperation } from './observability';

/**
 * A fence runs an outside command (a power switch, or the local stack's kill script): one retry
 * for a flaky controller, and a bound well above any fence's own timeout.
 */
const fencing = proxyActivities<Pick<ControllerActivities, 'fenceHost'>>({
  startToCloseTimeout: '5 minutes',
  retry: { maximumAttempts: 2, initialInterval: '2 seconds', nonRetryableErrorTypes: ['NotFoundError'] },
});

export interface HaRestartResult {
  hostId: string;
  outcome: 'recovered' | 'restarted';
  reason: string;
  fence?: string;
  restarted: { vmId: string; to: string }[];
  failed: { vmId: string; reason: string }[];
}

/** Runs begun before the probe fenced on the database's word alone. */
const PROBE_BEFORE_FENCE = 'probe-agent-before-fence';

/** The probe: picked up and answered within seconds, once, or the agent is taken as gone. */
const PROBE = {
  scheduleToStartTimeout: '10 seconds',
  startToCloseTimeout: '10 seconds',
  attempts: 1,
} as const;

/**
 * How long a VM busy with another operation is waited for, in 10 s turns: a migration off the
 * lost host needs up to 15 min to give up on resuming its source there.
 */
const BUSY_WAIT_ATTEMPTS = 120;

/**
 * The loss of a host (`host/<hostId>`): confirm it, fence it, and only once the fence is
 * confirmed restart its HA VMs on other hosts, highest priority first. A fence that fails
 * leaves every VM where it was and the host waiting for an operator: a VM never runs twice.
 */
export async function haRestart(input: FenceRequest): Promise<HaRestartResult> {
  const req = parseWorkflowInput(fenceRequestSchema, input);
  const { hostId } = req;
  const op = trackOperation({ operation: 'ha-restart', hosts: [hostId] });
  op.phase('confirming', `checking that ${hostId} is really lost`);
  const loss = await inventory.confirmHostLost({ hostId, force: req.force ?? false });
  const result: HaRestartResult = {
    hostId,
    outcome: 'recovered',
    reason: loss.reason,
    restarted: [],
    failed: [],
  };
  if (!loss.lost) {
    op.phase('done', loss.reason);
    return result;
  }
  // Liveness comes through the database: before anything is fenced, ask the agent itself,
  // on its own task queue. One that answers is alive, however late its heartbeat record is.
  if (!req.force && patched(PROBE_BEFORE_FENCE)) {
    op.phase('probing', `asking ${hostId}'s agent directly before fencing it`);
    const answered = await onHost(hostId, PROBE)
      .reportHost()
      .then(
        () => true,
        () => false,
      );
    if (answered) {
      result.reason = `its agent answered on its task queue (${loss.reason} in the database)`;
      await inventory.recordFenceAverted({ hostId, reason: result.reason });
      op.phase('done', `not fenced: ${result.reason}`);
      return result;
    }
  }
  op.phase('fencing', `fencing ${hostId} (${loss.reason}) before anything restarts elsewhere`);
  try {
    result.fence = await fencing.fenceHost({ hostId });
  } catch (err) {
    const reason = reasonOf(err);
    await inventory.markNeedsOperator({ hostId, reason: `fence failed: ${reason}` });
    op.phase('needs-operator', `fence failed, nothing restarted: ${reason}`);
    throw ApplicationFailure.nonRetryable(
      `host ${hostId} needs an operator: the fence failed (${reason}); none of its VMs was restarted`,
      'FenceFailedError',
    );
  }
  const candidates = await inventory.recordHostFenced({ hostId });
  result.outcome = 'restarted';
  for (const wave of restartWaves(candidates)) {
    op.phase(
      'restarting',
      `restarting ${wave.map((v) => v.vmId).join(', ')} (priority ${wave[0].priority}) away from ${hostId}`,
      { restarted: result.restarted, failed: result.failed },
    );
    await Promise.all(
      wave.map(async ({ vmId }) => {
        try {
          const to = await restartChild(vmId, hostId);
          result.restarted.push({ vmId, to });
        } catch (err) {
          result.failed.push({ vmId, reason: reasonOf((err as { cause?: unknown }).cause ?? err) });
        }
      }),
    );
  }
  op.phase(
    'done',
    `${hostId} fenced; restarted ${result.restarted.length} of ${candidates.length} HA VM(s)` +
      (result.failed.length
        ? `; failed: ${result.failed.map((f) => `${f.vmId} (${f.reason})`).join(', ')}`
        : ''),
    { restarted: result.restarted, failed: result.failed },
  );
  return result;
}

/** Runs `haRestartVm` as `vm/<vmId>`, waiting while another operation on the VM finishes. */
async function restartChild(vmId: string, from: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      // A terminated host workflow must not cut a restart off: it is asked to cancel, and cleans up.
      const child = await executeChild(haRestartVm, {
        workflowId: `vm/${vmId}`,
        args: [{ vmId, from }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      return child.host;
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError) || attempt >= BUSY_WAIT_ATTEMPTS) throw err;
      await sleep('10 seconds');
    }
  }
}

/**
 * Restarts one VM of a fenced host on another host of its cluster (`vm/<vmId>`): place, claim,
 * start QEMU on its shared disk, wait until the guest really runs, then record it there.
 */
export async function haRestartVm(req: {
  vmId: string;
  from: string;
}): Promise<{ vmId: string; host: string }> {
  const op = trackOperation({ operation: 'ha-restart-vm', vm: req.vmId, hosts: [req.from] });
  let vm;
  try {
    vm = await inventory.beginVmOperation({
      vmId: req.vmId,
      operation: 'ha-restart',
      allowedStates: ['crashed'],
    });
    if (vm.host !== req.from)
      throw ApplicationFailure.nonRetryable(
        `vm ${vm._id} is on ${vm.host} now, not ${req.from}`,
        'InvalidStateError',
      );
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  let target: string | undefined;
  let started = false;
  try {
    op.phase('placing', `choosing a host for ${vm._id} away from ${req.from}`);
    target = await placeAndClaim({ vmId: vm._id, memoryMiB: vm.memoryMiB, vcpus: vm.vcpus }, () =>
      inventory.placeHaRestart({ vmId: vm._id, from: req.from }),
    );
    op.hosts([req.from, target]);
    op.phase('starting', `starting ${vm._id} on ${target} from its disk ${vm.diskPath}`);
    started = true;
    await onHost(target).startGuest({
      vmId: vm._id,
      memoryMiB: vm.memoryMiB,
      vcpus: vm.vcpus,
      guest: vm.guest,
    });
    op.phase('booting', `waiting for ${vm._id} to boot on ${target} and answer`);
    await onHost(target, {
      startToCloseTimeout: '210 seconds',
      heartbeatTimeout: '15 seconds',
    }).waitForGuestBoot({
      vmId: vm._id,
      timeoutMs: 180_000,
      guestAgent: vm.guest?.guestAgent,
    });
    await inventory.commitHaRestart({ vmId: vm._id, from: req.from, to: target });
  } catch (err) {
    const reason = reasonOf(err);
    op.phase('compensating', `the restart failed: ${reason}`);
    await CancellationScope.nonCancellable(async () => {
      if (started && target)
        await onHost(target, { scheduleToStartTimeout: '30 seconds' })
          .destroyGuest({ vmId: vm._id })
          .catch(() => undefined);
      await inventory.recordHaRestartFailed({ vmId: vm._id, from: req.from, reason });
    });
    op.phase('failed', reason);
    throw operatorFailure(err);
  }
  op.phase('done', `${vm._id} runs on ${target} (was on lost host ${req.from})`);
  return { vmId: vm._id, host: target };
}
