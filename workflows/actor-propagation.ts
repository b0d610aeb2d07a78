import type { Payload, WorkflowInterceptorsFactory } from '@temporalio/workflow';
import { ACTOR_HEADER } from '../domain/actor-header';

/**
 * Passes the actor header a run was started with to everything it schedules (see
 * domain/actor-header.ts). Headers take no part in replay's command matching, so adding this
 * interceptor changes no recorded history.
 */
export const interceptors: WorkflowInterceptorsFactory = () => {
  let actor: Payload | undefined;
  const stamp = <T extends { headers: Record<string, Payload> }>(input: T): T =>
    actor ? { ...input, headers: { ...input.headers, [ACTOR_HEADER]: actor } } : input;
  return {
    inbound: [
      {
        async execute(input, next) {
          actor = input.headers[ACTOR_HEADER];
          return next(input);
        },
      },
    ],
    outbound: [
      {
        scheduleActivity: (input, next) => next(stamp(input)),
        scheduleLocalActivity: (input, next) => next(stamp(input)),
        startChildWorkflowExecution: (input, next) => next(stamp(input)),
        continueAsNew: (input, next) => next(stamp(input)),
      },
    ],
  };
};
