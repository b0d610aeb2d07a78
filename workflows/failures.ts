import { ActivityFailure, ApplicationFailure, CancelledFailure, TemporalFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import { parseInput, VirtflowError } from '../domain/errors';

/** The ApplicationFailure an activity raised, unwrapped from Temporal's ActivityFailure. */
function applicationCause(err: unknown): ApplicationFailure | undefined {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) return err.cause;
  return undefined;
}

export function isFailureOfType(err: unknown, type: string): boolean {
  return applicationCause(err)?.type === type;
}

/** One line an operator can act on, whatever layer the failure came from. */
export function reasonOf(err: unknown): string {
  const app = applicationCause(err);
  if (app) return app.message;
  if (err instanceof CancelledFailure) return 'cancelled';
  if (err instanceof ActivityFailure && err.cause) {
    return `${err.activityType} failed: ${err.cause.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * The failure a workflow ends with: non-retryable, carrying the original type (so a client can
 * tell InsufficientCapacityError from GuestBootError) and the operator's one-line reason.
 */
export function operatorFailure(err: unknown): TemporalFailure {
  if (err instanceof CancelledFailure) return err;
  const app = applicationCause(err);
  return ApplicationFailure.nonRetryable(reasonOf(err), app?.type ?? 'OperationFailed');
}

/**
 * A workflow's own check of its input, with the schema the client used: any Temporal client can
 * start a workflow with anything. A bad field fails the run (not just its task) with the
 * field and the reason, before the first step.
 */
export function parseWorkflowInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  try {
    return parseInput(schema, input, '');
  } catch (err) {
    if (err instanceof VirtflowError) throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  }
}
