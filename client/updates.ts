import { ServiceError, WorkflowUpdateFailedError } from '@temporalio/client';
import { InvalidStateError } from '../domain/errors';

/** gRPC FAILED_PRECONDITION: the server's answer to an Update while a workflow task is failing. */
const FAILED_PRECONDITION = 9;
const RETRY_FOR_MS = 60_000;

/**
 * The server refuses an Update, without applying it, while the workflow's current task is being
 * retried (a task that timed out on a busy worker, say): "Unable to perform workflow execution
 * update due to unexpected workflow task failure". The next task usually succeeds, so this is
 * worth waiting out; a workflow whose tasks keep failing still surfaces after RETRY_FOR_MS.
 */
function refusedWhileTaskFails(err: unknown): boolean {
  const cause = err instanceof ServiceError ? (err.cause as { code?: number; message?: string }) : undefined;
  return cause?.code === FAILED_PRECONDITION && /workflow task failure/i.test(cause.message ?? '');
}

/**
 * Sends a control Update. A validator's refusal comes back as the operator's sentence (why the
 * control is not allowed now), not as "Workflow Update failed". The one place this mapping lives.
 */
export async function sendControl(send: () => Promise<string>): Promise<string> {
  const deadline = Date.now() + RETRY_FOR_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError)
        throw new InvalidStateError(err.cause?.message ?? err.message);
      if (!refusedWhileTaskFails(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(250 * attempt, 2000)));
    }
  }
}
