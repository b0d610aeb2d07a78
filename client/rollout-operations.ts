import type { Client } from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput } from '../domain/errors';
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
import { sendControl } from './updates';

function describeTargets(spec: { hosts?: string[]; cluster?: string }): string {
  if (!spec.hosts) return `cluster ${spec.cluster}`;
  return spec.hosts.length <= 5 ? spec.hosts.join(', ') : `${spec.hosts.length} hosts`;
}

/** The typed client for rolling patches and their controls. */
export function rolloutOperations(client: Client, config: Config) {
  const handle = (name: string) => client.workflow.getHandle(workflowIds.rollout(name));
  return {
    async start(req: RolloutRequest) {
      const spec = parseInput(rolloutRequestSchema, req, '');
      const workflowId = workflowIds.rollout(spec.name);
      const h = await client.workflow.start<typeof rollingPatch>('rollingPatch', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId,
        args: [spec],
        staticSummary: `Rolling patch ${spec.name}: ${spec.patch} over ${describeTargets(spec)}, max unavailable ${spec.maxUnavailable}`,
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
    pause: (name: string) => sendControl(() => handle(name).executeUpdate(pauseRollout)),
    resume: (name: string) => sendControl(() => handle(name).executeUpdate(resumeRollout)),
    abort: (name: string) => sendControl(() => handle(name).executeUpdate(abortRollout)),
    skip: (name: string, hostId: string) =>
      sendControl(() => handle(name).executeUpdate(skipHost, { args: [{ hostId }] })),
    retry: (name: string, hostId: string) =>
      sendControl(() => handle(name).executeUpdate(retryHost, { args: [{ hostId }] })),
  };
}
