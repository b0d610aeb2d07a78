import type { Client } from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE } from '../domain/names';
import { z } from 'zod';
import type { fixDrift, reconcileFleet } from '../workflows';
import { runUrl } from './temporal';

/** The schedule that runs a reconciliation pass over the fleet. */
export const RECONCILE_SCHEDULE = 'reconcile';

const driftIdSchema = z
  .string()
  .regex(/^[a-z-]+-[0-9a-f]{12}$/, 'must be a drift id as `virtflow audit drift` prints it');

/** The typed client for reconciliation passes, their schedule, and drift fixes. */
export function auditOperations(client: Client, config: Config) {
  return {
    /** Runs one pass now and waits for it. */
    async run() {
      const workflowId = `reconcile/fleet-${Date.now().toString(36)}`;
      const handle = await client.workflow.start<typeof reconcileFleet>('reconcileFleet', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId,
        args: [],
        staticSummary: 'Reconcile the inventory with every host (on demand)',
      });
      return {
        workflowId,
        runId: handle.firstExecutionRunId,
        url: runUrl(config, workflowId, handle.firstExecutionRunId),
        handle,
        result: () => handle.result(),
      };
    },

    /** Applies the fix an open drift proposes, as `drift/<id>` (one fix at a time per drift). */
    async fix(id: string) {
      parseInput(driftIdSchema, id, 'id');
      return client.workflow.execute<typeof fixDrift>('fixDrift', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: `drift/${id}`,
        args: [{ id }],
        staticSummary: `Fix drift ${id}`,
      });
    },

    /**
     * Creates (or updates) the schedule that reconciles every `intervalSec` seconds. Overlaps
     * are skipped: a pass still running when the next is due simply finishes first.
     */
    async ensureSchedule(intervalSec: number) {
      parseInput(z.number().int().min(5).max(86_400), intervalSec, 'intervalSec');
      const action = {
        type: 'startWorkflow' as const,
        workflowType: 'reconcileFleet',
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: 'reconcile/fleet',
        args: [],
      };
      const spec = { intervals: [{ every: intervalSec * 1000 }] };
      try {
        await client.schedule.create({
          scheduleId: RECONCILE_SCHEDULE,
          spec,
          action,
          policies: { overlap: 'SKIP' },
        });
      } catch (err) {
        if ((err as Error).name !== 'ScheduleAlreadyRunning') throw err;
        await client.schedule.getHandle(RECONCILE_SCHEDULE).update((prev) => ({ ...prev, spec, action }));
      }
    },
  };
}
