import { ApplicationFailure, CancellationScope, isCancellation, setHandler } from '@temporalio/workflow';
import type { DriveResult, IncomingEndpoint } from '../activities/host/contract';
import type { MigrationPlan } from '../activities/controller/migration-inventory-activities';
import {
  forceCompleteSchema,
  setBandwidthSchema,
  type MigrationPhase,
  type MigrationRequest,
} from '../domain/migration';
import type { ConvergenceTracker } from '../domain/convergence';
import { inventory, onHost } from './activity-proxies';
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
const ABORTABLE: MigrationPhase[] = ['pre-checks', 'preparing-target', 'transferring', 'verifying'];

function describeStats(d: DriveResult): string {
  const s = d.stats;
  const pct = s.totalBytes > 0 ? Math.floor((100 * (s.totalBytes - s.remainingBytes)) / s.totalBytes) : 0;
  return (
    `${pct}% · ${(s.transferredBytes / MiB).toFixed(0)} MiB sent, ${(s.remainingBytes / MiB).toFixed(0)} MiB left · ` +
    `${s.mbps.toFixed(0)} Mbit/s · round ${s.iteration} · dirty ${s.dirtyPagesRate} pages/s · ` +
    `downtime limit ${s.downtimeLimitMs} ms`
  );
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
  let verified: { seq: number | null; via?: 'guest-agent' | 'console' } = { seq: null };
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
          sliceMs: 2000,
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
      setPhase('verifying', `waiting for a fresh heartbeat from ${p.vmId} on ${p.target}`, {
        stats: lastDrive.stats,
      });
      verified = await onHost(p.target, {
        startToCloseTimeout: `${p.policy.verifyTimeoutSec + 30} seconds`,
        heartbeatTimeout: '10 seconds',
      }).verifyGuestAlive({
        vmId: p.vmId,
        afterSeq: lastDrive.sourceHeartbeatSeq,
        timeoutMs: p.policy.verifyTimeoutSec * 1000,
        guestAgent: p.guest?.guestAgent,
      });
    });
  } catch (err) {
    const reason = abortReason ?? reasonOf(err);
    const wasPostCopy =
      (phase as MigrationPhase) === 'post-copy' || (lastDrive?.stats.status.startsWith('postcopy') ?? false);
    await CancellationScope.nonCancellable(() => rollBackMigration(p, reason, wasPostCopy, setPhase));
    if (abortReason)
      throw ApplicationFailure.nonRetryable(
        `migration of ${p.vmId} aborted: ${abortReason}`,
        'MigrationAborted',
      );
    if (isCancellation(err)) throw err;
    throw operatorFailure(err);
  }

  // Verified: from here on the migration only moves forward, even if the workflow is cancelled.
  return CancellationScope.nonCancellable(async () => {
    setPhase('committing', `quitting the source on ${p.source} and recording ${p.target} as the owner`);
    await Promise.all([
      onHost(p.source).quitMigratedSource({ vmId: p.vmId }),
      onHost(p.target).adoptIncomingGuest({ vmId: p.vmId }),
    ]);
    const stats = lastDrive!.stats;
    const result: MigrationResult = {
      vmId: p.vmId,
      source: p.source,
      target: p.target,
      totalTimeMs: Date.now() - startedAt,
      downtimeMs: stats.downtimeMs,
      transferredBytes: stats.transferredBytes,
      iterations: stats.iteration,
      verifiedBy: verified.via ?? 'console',
      verifiedHeartbeatSeq: verified.seq,
      timelineMs: { ...timeline, done: Date.now() - workflowStart },
    };
    await inventory.commitMigration({ plan: p, details: { ...result } });
    setPhase('done', `${p.vmId} runs on ${p.target} (downtime ${stats.downtimeMs ?? '?'} ms)`, { stats });
    return result;
  });
}

/**
 * Puts everything back: the destination is killed and confirmed gone before the source is
 * resumed, so the guest never runs twice. If the destination cannot be confirmed dead, the
 * source is left as it is and the VM is flagged for an operator.
 */
async function rollBackMigration(
  plan: MigrationPlan,
  reason: string,
  wasPostCopy: boolean,
  setPhase: (p: MigrationPhase, m: string) => void,
): Promise<void> {
  if (wasPostCopy) {
    // After the switch-over the guest's memory lives partly on each host: neither side can run alone.
    setPhase('failed', `post-copy failed: ${reason}`);
    await inventory.recordMigrationNotCommitted({
      plan,
      reason: `post-copy failed: ${reason}`,
      outcome: 'failed',
      vmState: 'crashed',
    });
    return;
  }
  setPhase('rolling-back', `rolling back: ${reason}`);
  const target = onHost(plan.target, { scheduleToStartTimeout: '1 minute' });
  try {
    await target.killIncoming({ vmId: plan.vmId });
  } catch (err) {
    const why = `destination on ${plan.target} could not be confirmed dead (${reasonOf(err)}); source left untouched`;
    setPhase('failed', why);
    await inventory.recordMigrationNotCommitted({ plan, reason: `${reason}; ${why}`, outcome: 'failed' });
    return;
  }
  await onHost(plan.source, { scheduleToStartTimeout: '5 minutes' }).resumeSource({ vmId: plan.vmId });
  await inventory.recordMigrationNotCommitted({ plan, reason, outcome: 'rolled-back' });
  setPhase('rolled-back', `${plan.vmId} keeps running on ${plan.source}: ${reason}`);
}
