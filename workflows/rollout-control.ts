import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { HostRolloutState } from '../domain/rollout';

export interface RolloutProgress {
  operation: 'rolling-patch';
  phase: string;
  message: string;
  /** Why the rollout is not starting hosts right now, if it is not. */
  waitingFor?: string;
  paused: boolean;
  aborted: boolean;
  failures: number;
  hosts: { hostId: string; state: HostRolloutState; attempts: number; reason?: string }[];
}

/** Controls of a running rollout; each has a validator in the workflow. */
export const pauseRollout = defineUpdate<string, []>('pause');
export const resumeRollout = defineUpdate<string, []>('resume');
export const abortRollout = defineUpdate<string, []>('abort');
export const skipHost = defineUpdate<string, [{ hostId: string }]>('skipHost');
export const retryHost = defineUpdate<string, [{ hostId: string }]>('retryHost');
export const rolloutProgress = defineQuery<RolloutProgress>('progress');

/** How one host's patch ended, as its `host/<id>` workflow reports it to the rollout. */
export interface HostPatchReport {
  hostId: string;
  /** The rollout's attempt it answers: a late report of an earlier attempt is not this one's. */
  attempt: number;
  outcome: 'patched' | 'skipped' | 'failed';
  reason?: string;
  /** The reporting `patchHost` run: only the run the rollout started for this attempt counts. */
  runId?: string;
}
export const hostPatchEnded = defineSignal<[HostPatchReport]>('hostPatchEnded');
