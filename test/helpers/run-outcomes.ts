import { WorkflowFailedError } from '@temporalio/client';
import type { ApplicationFailure } from '@temporalio/common';
import { InvalidStateError } from '../../domain/errors';

/** The sentence a control Update's validator refused with, as the client library reports it. */
export async function refusal(sent: Promise<unknown>): Promise<string> {
  const err = await sent.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidStateError);
  return (err as InvalidStateError).message;
}

/** The failure a workflow run ended with (its type and the operator's sentence). */
export async function workflowFailure(result: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await result.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as ApplicationFailure;
}
