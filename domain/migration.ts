import { z } from 'zod';
import { idSchema } from './ids';

/**
 * Live migration: the request, its convergence policy, and the phases an operator sees.
 * Validated at the edge and again by the workflow's first step.
 */
export const migrationPolicySchema = z
  .object({
    /** Bandwidth cap in MiB/s (QEMU's own default is 128). */
    maxBandwidthMiBps: z.number().int().min(1, 'must be at least 1 MiB/s').max(100_000).default(1024),
    /** The pause QEMU may take to switch over, in ms. */
    maxDowntimeMs: z.number().int().min(1).max(60_000).default(300),
    /** Downtime limits tried in turn when dirty-sync rounds go on without converging. */
    downtimeStepsMs: z.array(z.number().int().min(1).max(60_000)).max(10).default([500, 1000, 2000]),
    /** Dirty-sync rounds between two downtime steps. */
    roundsPerDowntimeStep: z.number().int().min(1).max(100).default(3),
    /** Let QEMU throttle the guest's vCPUs when it dirties memory faster than it is sent. */
    autoConverge: z.boolean().default(false),
    /** Enable post-copy, so the migration can switch over before all memory is sent. */
    postCopy: z.boolean().default(false),
    /** Seconds allowed per GiB of guest memory before `onTimeout` applies. */
    completionTimeoutSecPerGiB: z.number().int().min(1).max(86_400).default(600),
    onTimeout: z.enum(['abort', 'force-complete']).default('abort'),
    /** Abort when the remaining bytes have not reached a new low for this long. */
    noProgressTimeoutSec: z.number().int().min(5).max(86_400).default(120),
    /** How long the destination's guest has to send a fresh heartbeat after switch-over. */
    verifyTimeoutSec: z.number().int().min(5).max(600).default(30),
  })
  .refine((p) => p.downtimeStepsMs.every((d) => d > p.maxDowntimeMs), {
    message: 'every downtime step must be above maxDowntimeMs',
    path: ['downtimeStepsMs'],
  });
export type MigrationPolicy = z.output<typeof migrationPolicySchema>;

export const migrationRequestSchema = z.object({
  vmId: idSchema,
  /** Target host; when absent, placement picks one other than the source. */
  to: idSchema.optional(),
  policy: migrationPolicySchema.default(migrationPolicySchema.parse({})),
});
export type MigrationRequest = z.input<typeof migrationRequestSchema>;

export type MigrationPhase =
  | 'pre-checks'
  | 'preparing-target'
  | 'transferring'
  | 'post-copy'
  | 'verifying'
  | 'committing'
  | 'rolling-back'
  | 'done'
  | 'rolled-back'
  | 'failed';

/** What QEMU says of a migration in flight, as every progress report carries it. */
export interface MigrationStats {
  status: string;
  transferredBytes: number;
  remainingBytes: number;
  totalBytes: number;
  dirtyPagesRate: number;
  iteration: number;
  expectedDowntimeMs: number | null;
  mbps: number;
  elapsedMs: number;
  downtimeMs: number | null;
  downtimeLimitMs: number;
  bandwidthMiBps: number;
}

export const setBandwidthSchema = z.object({
  maxBandwidthMiBps: z
    .number()
    .int()
    .min(1, 'must be at least 1 MiB/s')
    .max(100_000, 'must be at most 100000 MiB/s'),
});

export const forceCompleteSchema = z.object({
  /** post-copy: switch over now and pull the rest on demand; pause: stop the guest until the copy finishes. */
  mode: z.enum(['post-copy', 'pause']).default('pause'),
});
export type ForceCompleteRequest = z.input<typeof forceCompleteSchema>;

/**
 * How long one slice of a live migration's transfer lasts: 2 s at first (an operator sees the
 * progress move), then a thirtieth of the time spent so far, at most 30 s. Each slice costs the
 * workflow's history some six events, so a transfer that runs for a day at a low bandwidth cap
 * stays under 20,000 of Temporal's 51,200, where fixed 2 s slices reached the limit after 4.7 h
 * and the server would have terminated the run with no rollback.
 */
export function migrationSliceMs(elapsedMs: number): number {
  return Math.round(Math.min(30_000, Math.max(2_000, elapsedMs / 30)));
}
