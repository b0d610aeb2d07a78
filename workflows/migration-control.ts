import { defineUpdate } from '@temporalio/workflow';
import type { ForceCompleteRequest, MigrationPhase, MigrationStats } from '../domain/migration';

/**
 * The controls of a running live migration, defined once here and imported by the client, so
 * a client call is type-checked against the workflow. Each has a validator in the workflow
 * that rejects it, before anything happens, when the current phase does not allow it.
 */
export const abortMigration = defineUpdate<string, [{ reason?: string }]>('abort');
export const forceCompleteMigration = defineUpdate<string, [ForceCompleteRequest]>('forceComplete');
export const setMaxBandwidth = defineUpdate<string, [{ maxBandwidthMiBps: number }]>('setMaxBandwidth');

export interface MigrationProgress {
  operation: string;
  phase: MigrationPhase | string;
  message: string;
  source?: string;
  target?: string;
  stats?: MigrationStats;
  maxBandwidthMiBps?: number;
}

export interface MigrationResult {
  vmId: string;
  source: string;
  target: string;
  totalTimeMs: number;
  downtimeMs: number | null;
  transferredBytes: number;
  iterations: number;
  /** How the destination proved the guest runs: its agent answered, or a console heartbeat. */
  verifiedBy: 'guest-agent' | 'console';
  /** The console heartbeat that proved it (images without an agent). */
  verifiedHeartbeatSeq: number | null;
  /** When each phase began, in ms since the workflow started. */
  timelineMs: Partial<Record<MigrationPhase | 'done', number>>;
  /**
   * VMs with NICs: their networks, and the outage their peers see as virtflow knows it: the
   * guest is silent for the switch-over's downtime, and the destination announces it as it
   * resumes (a 10 ms pinger measures it in bench/migration.ts and the networks test).
   */
  network?: { networks: string[]; outageMs: number | null; announced: string };
}
