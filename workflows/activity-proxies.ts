import { proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { HostActivities } from '../activities/host-activities';
import type { InventoryActivities } from '../activities/inventory-activities';
import { hostTaskQueue } from '../domain/names';

/** Inventory and pure-logic activities run on the controller's own task queue. */
export const inventory = proxyActivities<InventoryActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, nonRetryableErrorTypes: ['ValidationError', 'NotFoundError'] },
});

/**
 * Activities of one host, routed to its task queue. Short calls fail fast when the agent is
 * gone (scheduleToStart) instead of waiting forever on a queue nobody polls.
 */
export function onHost(hostId: string, opts: { scheduleToStartTimeout?: Duration } = {}) {
  return proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(hostId),
    startToCloseTimeout: '1 minute',
    scheduleToStartTimeout: opts.scheduleToStartTimeout ?? '1 minute',
    retry: { maximumAttempts: 3 },
  });
}
