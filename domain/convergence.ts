import type { MigrationPolicy, MigrationStats } from './migration';

/**
 * The convergence policy of a live migration, as a pure decision over what QEMU reports, so it
 * is the same whichever agent drives the migration and can be tested without a guest.
 */
export interface ConvergenceTracker {
  startedAt: number;
  bestRemaining: number | null;
  bestRemainingAt: number;
  /** Index into [maxDowntimeMs, ...downtimeStepsMs] of the limit in force. */
  downtimeStep: number;
  forced: 'post-copy' | 'pause' | null;
}

export type ConvergenceAction =
  | { kind: 'none' }
  | { kind: 'set-downtime'; downtimeMs: number }
  | { kind: 'force'; mode: 'post-copy' | 'pause'; reason: string }
  | { kind: 'give-up'; reason: string };

export function newTracker(now: number): ConvergenceTracker {
  return { startedAt: now, bestRemaining: null, bestRemainingAt: now, downtimeStep: 0, forced: null };
}

export function downtimeLimits(policy: MigrationPolicy): number[] {
  return [policy.maxDowntimeMs, ...policy.downtimeStepsMs];
}

/**
 * The longest a transfer may run, whatever its policy and size allow (a 1 TiB VM at 600 s/GiB
 * would be allowed a week): its slices (migrationSliceMs) must fit one workflow history, and two
 * days of them take some 35,000 of Temporal's 51,200 events. Past it, `onTimeout` applies.
 */
export const MAX_TRANSFER_SEC = 48 * 3600;

export function decideConvergence(
  prev: ConvergenceTracker,
  stats: Pick<MigrationStats, 'status' | 'remainingBytes' | 'iteration'>,
  policy: MigrationPolicy,
  memoryMiB: number,
  now: number,
): { tracker: ConvergenceTracker; action: ConvergenceAction } {
  const tracker = { ...prev };
  if (tracker.bestRemaining === null || stats.remainingBytes < tracker.bestRemaining) {
    tracker.bestRemaining = stats.remainingBytes;
    tracker.bestRemainingAt = now;
  }
  // Only a pre-copy still copying can be steered; post-copy and the final pause finish by themselves.
  if (stats.status !== 'active' || tracker.forced) return { tracker, action: { kind: 'none' } };

  const elapsedSec = (now - tracker.startedAt) / 1000;
  const limitSec = Math.min(
    policy.completionTimeoutSecPerGiB * Math.max(memoryMiB / 1024, 1 / 8),
    MAX_TRANSFER_SEC,
  );
  if (elapsedSec > limitSec) {
    const reason = `not complete after ${Math.round(elapsedSec)} s (limit ${Math.round(limitSec)} s for ${memoryMiB} MiB)`;
    if (policy.onTimeout === 'abort') return { tracker, action: { kind: 'give-up', reason } };
    tracker.forced = policy.postCopy ? 'post-copy' : 'pause';
    return { tracker, action: { kind: 'force', mode: tracker.forced, reason } };
  }
  const stuckSec = (now - tracker.bestRemainingAt) / 1000;
  if (stuckSec > policy.noProgressTimeoutSec) {
    return {
      tracker,
      action: {
        kind: 'give-up',
        reason: `no progress for ${Math.round(stuckSec)} s (${stats.remainingBytes} bytes remain)`,
      },
    };
  }
  const limits = downtimeLimits(policy);
  const wanted = Math.min(
    Math.floor(Math.max(stats.iteration - 1, 0) / policy.roundsPerDowntimeStep),
    limits.length - 1,
  );
  if (wanted > tracker.downtimeStep) {
    tracker.downtimeStep = wanted;
    return { tracker, action: { kind: 'set-downtime', downtimeMs: limits[wanted] } };
  }
  return { tracker, action: { kind: 'none' } };
}
