import { connectClient } from '../client/temporal';
import type { Config } from '../domain/config';
import { logger } from '../domain/logger';
import { CONTROLLER_TASK_QUEUE } from '../domain/names';

export const PRUNE_METRICS_SCHEDULE = 'prune-metrics';

/**
 * Makes sure the hourly `prune-metrics` schedule exists (every controller tries at start; the
 * first creates it). A failure is logged, not fatal: the controller serves without it and the
 * next start tries again.
 */
export async function ensureMetricsRetentionSchedule(config: Config): Promise<void> {
  try {
    const client = await connectClient(config);
    await client.schedule
      .create({
        scheduleId: PRUNE_METRICS_SCHEDULE,
        spec: { intervals: [{ every: '1 hour' }] },
        action: {
          type: 'startWorkflow',
          workflowType: 'pruneMetrics',
          taskQueue: CONTROLLER_TASK_QUEUE,
          workflowId: 'metrics/prune',
          args: [],
        },
        policies: { overlap: 'SKIP' },
      })
      .catch((err: Error) => {
        if (err.name !== 'ScheduleAlreadyRunning') throw err;
      })
      .finally(() => client.connection.close());
  } catch (err) {
    logger.warn({ err }, 'could not create the prune-metrics schedule');
  }
}
