import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { Config } from '../domain/config';
import { InvalidStateError, parseInput } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../domain/names';
import { rolloutRequestSchema, type RolloutRequest } from '../domain/rollout';
import type { rollingPatch } from '../workflows';
import {
  abortRollout,
  pauseRollout,
  resumeRollout,
  retryHost,
  rolloutProgress,
  skipHost,
} from '../workflows/rollout-control';
import { runUrl } from './temporal';

/** The typed client for rolling patches and their controls. */
export function rolloutOperations(client: Client, config: Config) {
  const handle = (name: string) => client.workflow.getHandle(workflowIds.rollout(name));
  /** A validator's refusal comes back as its own sentence. */
  const control = async (run: () => Promise<string>) => {
    try {
      return await run();
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError)
        throw new InvalidStateError(err.cause?.message ?? err.message);
      throw err;
    }
  };
  return {
    async start(req: RolloutRequest) {
      const spec = parseInput(rolloutRequestSchema, req, '');
      const workflowId = workflowIds.rollout(spec.name);
      const h = await client.workflow.start<typeof rollingPatch>('rollingPatch', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId,
        args: [spec],
        staticSummary: `Rolling patch ${spec.name}: ${spec.patch} over ${spec.hosts?.join(', ') ?? `cluster ${spec.cluster}`}, max unavailable ${spec.maxUnavailable}`,
        workflowIdConflictPolicy: 'FAIL',
      });
      return {
        workflowId,
        url: runUrl(config, workflowId, h.firstExecutionRunId),
        handle: h,
        result: () => h.result(),
      };
    },
    status: (name: string) => handle(name).query(rolloutProgress),
    pause: (name: string) => control(() => handle(name).executeUpdate(pauseRollout)),
    resume: (name: string) => control(() => handle(name).executeUpdate(resumeRollout)),
    abort: (name: string) => control(() => handle(name).executeUpdate(abortRollout)),
    skip: (name: string, hostId: string) =>
      control(() => handle(name).executeUpdate(skipHost, { args: [{ hostId }] })),
    retry: (name: string, hostId: string) =>
      control(() => handle(name).executeUpdate(retryHost, { args: [{ hostId }] })),
  };
}
