import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { ControllerActivities } from '../activities/controller/controller-activities';
import type { DriveResult, IncomingEndpoint } from '../activities/host/contract';
import type { MigrationPlan } from '../activities/controller/migration-inventory-activities';
import {
  forceCompleteSchema,
  migrationSliceMs,
  setBandwidthSchema,
  type MigrationPhase,
  type MigrationRequest,
} from '../domain/migration';
import type { ConvergenceTracker } from '../domain/convergence';
import { inventory, onHost, UNTIL_DONE_RETRY } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import {
  abortMigration,
  forceCompleteMigration,
  setMaxBandwidth,
  type MigrationResult,
} from './migration-control';
import { trackOperation } from './observability';

const MiB = 1024 * 1024;

/** Phases in which abort can still put everything back as it was. */
const ABORTABLE: MigrationPhase[] = ['pre-checks', 'preparing-target', 'transferring'];

/** Marks the intent verified before the forward-only steps (runs begun earlier skip it). */
const MARK_VERIFIED = 'migration-intent-verified';

/** Adoption that ends when HA takes the VM over from a fenced target (runs begun earlier wait forever). */
const ADOPT_UNLESS_FENCED = 'adopt-unless-target-fenced';

/** The inventory steps after verification: unlimited attempts, so a database outage only delays them. */
const forward = proxyActivities<
  Pick<
    ControllerActivities,
    'recordMigrationVerified' | 'commitMigration' | 'migrationTakenOver' | 'recordMigrationNotCommitted'
  >
>({
  startToCloseTimeout: '30 seconds',
  retry: UNTIL_DONE_RETRY,
});

/** One round of adoption: a target whose agent does not pick it up in a minute is asked about again. */
const ADOPT_ROUND = { scheduleToStartTimeout: '1 minute', attempts: 3 } as const;

function describeStats(d: DriveResult): string {
  const s = d.stats;
  const pct = s.totalBytes > 0 ? Math.floor((100 * (s.totalBytes - s.remainingBytes)) / s.totalBytes) : 0;
  return (
    `${pct}% · ${(s.transferredBytes / MiB).toFixed(0)} MiB sent, ${(s.remainingBytes / MiB).toFixed(0)} MiB left · ` +
    `${s.mbps.toFixed(0)} Mbit/s · round ${s.iteration} · dirty ${s.dirtyPagesRate} pages/s · ` +
    `downtime limit ${s.downtimeLimitMs} ms`
  );
}

/** What a VM's peers on its networks saw of the migration (nothing for a VM without NICs). */
function networkOutage(p: MigrationPlan, downtimeMs: number | null): Pick<MigrationResult, 'network'> {
  const networks = (p.guest?.nics ?? []).map((n) => n.network);
  if (networks.length === 0) return {};
  return {
    network: {
      networks,
      outageMs: downtimeMs,
      announced: 'by the destination as it resumed, and again before it was verified',
    },
  };
}

/**
 * Moves a running VM to another host without stopping it: named pre-checks, a reservation on
 * the target, the transfer (driven in slices that report progress), then verification that the
 * guest really runs on the target before anything is committed. QEMU can report `completed`
 * after corrupting guest RAM, so a fresh heartbeat from the destination is required. Any failure,
 * abort or cancellation before the commit rolls back: the destination is killed first, then the
 * source resumed, so there are never two running copies.
 */
export async function liveMigration(request: MigrationRequest): Promise<MigrationResult> {
  const op = trackOperation({ operation: 'live-migration', vm: request.vmId });
  let phase: MigrationPhase = 'pre-checks';
  let plan: MigrationPlan | undefined;
  let bandwidth: number | undefined;
  let lastDrive: DriveResult | undefined;
  let abortReason: string | undefined;
  // When each phase began (ms since the start), so an operator sees where the time went.
  const workflowStart = Date.now();
  const timeline: Partial<Record<MigrationPhase, number>> = {};
  const setPhase = (p: MigrationPhase, message: string, extra: Record<string, unknown> = {}) => {
    timeline[p] ??= Date.now() - workflowStart;
    phase = p;
    op.phase(p, message, {
      source: plan?.source,
      target: plan?.target,
      maxBandwidthMiBps: bandwidth,
      ...extra,
    });
  };
  // Abort cancels this scope: the transfer stops at once and the rollback below runs.
  const abortable = new CancellationScope();

  setHandler(
    abortMigration,
    async ({ reason }) => {
      abortReason = reason || 'aborted by operator';
      abortable.cancel();
      return `aborting: ${abortReason}`;
    },
    {
      validator: (_req) => {
        if (phase === 'post-copy') {
          throw new Error(
            'cannot abort during post-copy: the guest already runs on the target and its memory is split between hosts',
          );
        }
        if (!ABORTABLE.includes(phase)) throw new Error(`cannot abort in phase ${phase}`);
      },
    },
  );
  setHandler(
    forceCompleteMigration,
    async (req) => {
      const { mode } = forceCompleteSchema.parse(req);
      await onHost(plan!.source).forceCompleteMigration({ vmId: plan!.vmId, mode });
      return `forcing completion by ${mode}`;
    },
    {
      validator: (req) => {
        const parsed = forceCompleteSchema.safeParse(req);
        if (!parsed.success) throw new Error(`mode: ${parsed.error.issues[0].message}`);
        if (phase !== 'transferring')
          throw new Error(`can only force completion while transferring, not in phase ${phase}`);
        if (parsed.data.mode === 'post-copy' && !plan?.policy.postCopy) {
          throw new Error('post-copy was not enabled when the migration started (--post-copy)');
        }
      },
    },
  );
  setHandler(
    setMaxBandwidth,
    async ({ maxBandwidthMiBps }) => {
      bandwidth = maxBandwidthMiBps;
      if (phase === 'transferring' && plan) {
        await onHost(plan.source).setMigrationBandwidth({ vmId: plan.vmId, maxBandwidthMiBps });
      }
      return `max bandwidth set to ${maxBandwidthMiBps} MiB/s`;
    },
    {
      validator: (req) => {
        const parsed = setBandwidthSchema.safeParse(req);
        if (!parsed.success) throw new Error(`maxBandwidthMiBps: ${parsed.error.issues[0].message}`);
        if (!['pre-checks', 'preparing-target', 'transferring'].includes(phase)) {
          throw new Error(`cannot change bandwidth in phase ${phase}`);
        }
      },
    },
  );

  setPhase('pre-checks', `checking that vm ${request.vmId} can move`);
  try {
    plan = await inventory.planMigration(request);
    op.hosts([plan.source, plan.target]);
    // Optional: a run begun before VMs had NICs has none in its history, so sets nothing.
    op.networks((plan.guest?.nics ?? []).map((n) => n.network));
    bandwidth ??= plan.policy.maxBandwidthMiBps;
    // Confirm the source really runs the VM while the target's capacity is claimed.
    const [onSource, reservationId] = await Promise.all([
      onHost(plan.source).guestStatus({ vmId: plan.vmId }),
      inventory.reserveMigrationTarget(plan),
    ]);
    // The claim's id lets commit and rollback release it by an indexed lookup.
    plan = { ...plan, reservationId };
    if (!onSource.running) {
      throw ApplicationFailure.nonRetryable(
        `vm ${plan.vmId} is recorded on ${plan.source} but QEMU there reports ${onSource.status}`,
        'SourceMismatchError',
      );
    }
  } catch (err) {
    // Nothing moved; a reservation, if one was made, is released with the record.
    if (plan)
      await inventory.recordMigrationNotCommitted({ plan, reason: reasonOf(err), outcome: 'rolled-back' });
    setPhase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
  const p = plan;
  const startedAt = Date.now();
  try {
    await abortable.run(async () => {
      setPhase('preparing-target', `starting an incoming QEMU for ${p.vmId} on ${p.target}`);
      const endpoint: IncomingEndpoint = await onHost(p.target).prepareIncoming({
        vmId: p.vmId,
        memoryMiB: p.memoryMiB,
        vcpus: p.vcpus,
        guest: p.guest,
        policy: p.policy,
      });
      setPhase(
        'transferring',
        `sending ${p.vmId}'s memory to ${p.target} (${endpoint.address}:${endpoint.port})`,
      );
      let tracker: ConvergenceTracker | null = null;
      const source = onHost(p.source, { startToCloseTimeout: '1 minute', heartbeatTimeout: '10 seconds' });
      for (;;) {
        const drive: DriveResult = await source.driveMigration({
          vmId: p.vmId,
          target: endpoint,
          policy: { ...p.policy, maxBandwidthMiBps: bandwidth ?? p.policy.maxBandwidthMiBps },
          memoryMiB: p.memoryMiB,
          tracker,
          sliceMs: migrationSliceMs(Date.now() - startedAt),
        });
        tracker = drive.tracker;
        lastDrive = drive;
        if (drive.outcome === 'completed') break;
        if (drive.outcome !== 'in-progress') {
          throw ApplicationFailure.nonRetryable(
            `migration of ${p.vmId} ${drive.outcome}: ${drive.reason}`,
            'MigrationFailed',
          );
        }
        const postCopy = drive.stats.status.startsWith('postcopy');
        setPhase(postCopy ? 'post-copy' : 'transferring', describeStats(drive), { stats: drive.stats });
      }
    });
  } catch (err) {
    const reason = abortReason ?? reasonOf(err);
    const wasPostCopy =
      (phase as MigrationPhase) === 'post-copy' || (lastDrive?.stats.status.startsWith('postcopy') ?? false);
    // The stream may have completed while the abort or failure was on its way: the target then
    // already runs the guest and has written the shared disk, so going back is no longer safe.
    const outcome = await CancellationScope.nonCancellable(() =>
      rollBackMigration(p, reason, wasPostCopy, setPhase, { keepIfCompleted: true }),
    );
    if (outcome !== 'completed-anyway') {
      if (abortReason)
        throw ApplicationFailure.nonRetryable(
          `migration of ${p.vmId} aborted: ${abortReason}`,
          'MigrationAborted',
        );
      if (isCancellation(err)) throw err;
      throw operatorFailure(err);
    }
  }

  // QEMU reported `completed`: the guest runs on the target. Abort is refused from here, and a
  // cancellation of the workflow waits: only a failed verification puts the source back.
  let verified: { seq: number | null; via?: 'guest-agent' | 'console' } = { seq: null };
  try {
    verified = await CancellationScope.nonCancellable(() => {
      setPhase('verifying', `waiting for a fresh heartbeat from ${p.vmId} on ${p.target}`, {
        stats: lastDrive?.stats,
      });
      return onHost(p.target, {
        startToCloseTimeout: `${p.policy.verifyTimeoutSec + 30} seconds`,
        heartbeatTimeout: '10 seconds',
      }).verifyGuestAlive({
        vmId: p.vmId,
        afterSeq: lastDrive?.sourceHeartbeatSeq ?? null,
        timeoutMs: p.policy.verifyTimeoutSec * 1000,
        guestAgent: p.guest?.guestAgent,
      });
    });
  } catch (err) {
    await CancellationScope.nonCancellable(() =>
      rollBackMigration(p, reasonOf(err), false, setPhase, { keepIfCompleted: false }),
    );
    throw operatorFailure(err);
  }

  // Verified: from here on the migration only moves forward, even if the workflow is cancelled.
  // The intent is marked verified first, so HA and the reconciler know the guest runs on the
  // target even if this worker is lost now. Adoption and the commit retry without limit (a lost
  // agent or database only delays them); the paused source is quit on a bounded budget, since a
  // leftover paused QEMU cannot run the guest and the reconciler reports it later.
  return CancellationScope.nonCancellable(async () => {
    setPhase('committing', `recording ${p.target} as the owner and quitting the source on ${p.source}`);
    if (patched(MARK_VERIFIED)) await forward.recordMigrationVerified({ plan: p });
    const [quit, adoption] = await Promise.all([
      onHost(p.source)
        .quitMigratedSource({ vmId: p.vmId })
        .catch((err: unknown) => ({ quit: false, error: reasonOf(err) })),
      patched(ADOPT_UNLESS_FENCED)
        ? adoptUnlessTakenOver(p, setPhase)
        : onHost(p.target, { untilDone: true })
            .adoptIncomingGuest({ vmId: p.vmId })
            .then(() => 'adopted' as const),
    ]);
    if (adoption === 'taken-over') return endTakenOver(p, setPhase);
    const stats = lastDrive?.stats;
    const result: MigrationResult = {
      vmId: p.vmId,
      source: p.source,
      target: p.target,
      totalTimeMs: Date.now() - startedAt,
      downtimeMs: stats?.downtimeMs ?? null,
      transferredBytes: stats?.transferredBytes ?? 0,
      iterations: stats?.iteration ?? 0,
      verifiedBy: verified.via ?? 'console',
      verifiedHeartbeatSeq: verified.seq,
      timelineMs: { ...timeline, done: Date.now() - workflowStart },
      ...networkOutage(p, stats?.downtimeMs ?? null),
    };
    const sourceLeft = 'error' in quit ? { sourceLeftPaused: quit.error } : {};
    const committed = await forward.commitMigration({ plan: p, details: { ...result, ...sourceLeft } });
    if (committed === 'taken-over') return endTakenOver(p, setPhase);
    const outage = result.network
      ? `; network outage about ${result.network.outageMs ?? '?'} ms on ${result.network.networks.join(', ')}`
      : '';
    setPhase('done', `${p.vmId} runs on ${p.target} (downtime ${stats?.downtimeMs ?? '?'} ms${outage})`, {
      stats,
    });
    return result;
  });
}

/**
 * Adopts the verified guest on the target, round after round while its agent is away, until
 * it is adopted or HA has taken the VM over because the target was fenced (the guest died with
 * it): going back is never an option, but waiting for a fenced host would be forever.
 */
async function adoptUnlessTakenOver(
  p: MigrationPlan,
  setPhase: (p: MigrationPhase, m: string) => void,
): Promise<'adopted' | 'taken-over'> {
  let waiting = '';
  for (;;) {
    try {
      await onHost(p.target, ADOPT_ROUND).adoptIncomingGuest({ vmId: p.vmId });
      return 'adopted';
    } catch (err) {
      if (await forward.migrationTakenOver({ plan: p })) return 'taken-over';
      const message = `waiting for ${p.target} to adopt ${p.vmId}: ${reasonOf(err)}`;
      if (message !== waiting) setPhase('committing', message);
      waiting = message;
      await sleep('30 seconds');
    }
  }
}

/** The target was fenced after verification: HA owns the VM; record the end and give back the claim. */
async function endTakenOver(
  p: MigrationPlan,
  setPhase: (p: MigrationPhase, m: string) => void,
): Promise<never> {
  const reason = `${p.target} was fenced after ${p.vmId}'s guest moved there; HA took the VM over`;
  await forward.recordMigrationNotCommitted({ plan: p, reason, outcome: 'taken-over' });
  setPhase('failed', reason);
  throw ApplicationFailure.nonRetryable(`migration of ${p.vmId} ended: ${reason}`, 'MigrationTargetLost');
}

/**
 * Puts everything back: the destination is killed and confirmed gone before the source is
 * resumed, so the guest never runs twice. If the destination cannot be confirmed dead, the
 * source is left as it is and the VM is flagged for an operator. With `keepIfCompleted`, a
 * destination that already runs the guest (the stream completed as the abort or failure landed)
 * is kept, and the caller goes forward instead.
 */
async function rollBackMigration(
  plan: MigrationPlan,
  reason: string,
  wasPostCopy: boolean,
  setPhase: (p: MigrationPhase, m: string) => void,
  opts: { keepIfCompleted: boolean },
): Promise<'rolled-back' | 'failed' | 'completed-anyway'> {
  if (wasPostCopy) {
    // After the switch-over the guest's memory lives partly on each host: neither side can run alone.
    setPhase('failed', `post-copy failed: ${reason}`);
    await inventory.recordMigrationNotCommitted({
      plan,
      reason: `post-copy failed: ${reason}`,
      outcome: 'failed',
      vmState: 'crashed',
    });
    return 'failed';
  }
  setPhase('rolling-back', `rolling back: ${reason}`);
  const target = onHost(plan.target, { scheduleToStartTimeout: '1 minute' });
  try {
    const killed = await target.killIncoming({ vmId: plan.vmId, keepIfCompleted: opts.keepIfCompleted });
    if (killed.completed) {
      setPhase('verifying', `the transfer had completed before "${reason}" took effect: going forward`);
      return 'completed-anyway';
    }
  } catch (err) {
    const why = `destination on ${plan.target} could not be confirmed dead (${reasonOf(err)}); source left untouched`;
    return failed(plan, `${reason}; ${why}`, why, setPhase);
  }
  try {
    await onHost(plan.source, { scheduleToStartTimeout: '5 minutes' }).resumeSource({ vmId: plan.vmId });
  } catch (err) {
    const why = `the source on ${plan.source} could not be resumed (${reasonOf(err)}); the destination is gone`;
    return failed(plan, `${reason}; ${why}`, why, setPhase);
  }
  await inventory.recordMigrationNotCommitted({ plan, reason, outcome: 'rolled-back' });
  setPhase('rolled-back', `${plan.vmId} keeps running on ${plan.source}: ${reason}`);
  return 'rolled-back';
}

/** The rollback could not finish: the VM waits for an operator, its migration intent cleared. */
async function failed(
  plan: MigrationPlan,
  reason: string,
  why: string,
  setPhase: (p: MigrationPhase, m: string) => void,
): Promise<'failed'> {
  setPhase('failed', why);
  await inventory.recordMigrationNotCommitted({ plan, reason, outcome: 'failed' });
  return 'failed';
}
