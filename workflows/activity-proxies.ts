import { proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { ControllerActivities } from '../activities/controller/controller-activities';
import type { HostContract } from '../activities/host/contract';
import { nonRetryableErrorTypes } from '../domain/errors';
import { hostTaskQueue, isSimHost } from '../domain/names';

/**
 * The retry of a step that must not give up (a verified migration's commit): unlimited attempts
 * (no maximumAttempts), one every 30 s at most.
 */
export const UNTIL_DONE_RETRY = { maximumInterval: '30 seconds', nonRetryableErrorTypes } as const;

/** Inventory and pure-logic activities run on the controller's own task queue. */
export const inventory = proxyActivities<ControllerActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes },
});

export interface HostCallOptions {
  /** How long the call may run; long calls also need a heartbeat timeout. */
  startToCloseTimeout?: Duration;
  heartbeatTimeout?: Duration;
  /** How long to wait for the host's agent to pick the call up before calling the host unreachable. */
  scheduleToStartTimeout?: Duration;
  /** Attempts in all (default 3); a timed-out pick-up counts as one, so a dead agent costs attempts × scheduleToStart. */
  attempts?: number;
  /**
   * For steps that must not give up (a verified migration's commit): no pick-up deadline and
   * unlimited attempts, one every 30 s at most, so a lost agent only delays them.
   */
  untilDone?: boolean;
}

/**
 * Activities of one host, routed to its task queue. Calls fail when the agent does not pick
 * them up in time (scheduleToStart) instead of waiting forever on a queue nobody polls.
 */
export function onHost(hostId: string, opts: HostCallOptions = {}): HostContract {
  const sim = isSimHost(hostId);
  const activities = proxyActivities<HostContract>({
    taskQueue: hostTaskQueue(hostId),
    ...(sim
      ? simulatedCallBounds(opts)
      : {
          startToCloseTimeout: opts.startToCloseTimeout ?? '1 minute',
          heartbeatTimeout: opts.heartbeatTimeout,
        }),
    ...(opts.untilDone
      ? { retry: UNTIL_DONE_RETRY }
      : {
          scheduleToStartTimeout: opts.scheduleToStartTimeout ?? '1 minute',
          retry: { maximumAttempts: opts.attempts ?? 3, nonRetryableErrorTypes },
        }),
  });
  return sim ? routedToSimHost(activities, hostId) : activities;
}

/**
 * A simulated host's call lasts modelled time, and a modelled minute takes as long in wall time
 * as the whole fleet's clock needs to get there: at 500 hosts, a 120 s reboot outlasted the
 * minute a real agent's restart gets, and hosts failed on timeouts no real host would see. The
 * wall-time bound is therefore generous; every modelled wait heartbeats each second, so a
 * simulated call that stops progressing still fails on its heartbeat.
 */
function simulatedCallBounds(opts: HostCallOptions): {
  startToCloseTimeout: Duration;
  heartbeatTimeout: Duration;
} {
  return { startToCloseTimeout: '1 hour', heartbeatTimeout: opts.heartbeatTimeout ?? '30 seconds' };
}

/**
 * Simulated hosts share one queue, so each call carries the host it is for. A QEMU agent's
 * calls stay exactly as they are: the agent knows which host it is.
 */
function routedToSimHost(activities: HostContract, hostId: string): HostContract {
  return new Proxy(activities, {
    get(target, name: keyof HostContract) {
      const call = target[name] as (arg?: object) => Promise<unknown>;
      return (arg?: object) => call({ ...arg, hostId });
    },
  });
}
