import { WorkflowUpdateFailedError } from '@temporalio/client';
import { InvalidStateError } from '../domain/errors';

/**
 * Sends a control Update. A validator's refusal comes back as the operator's sentence (why the
 * control is not allowed now), not as "Workflow Update failed". The one place this mapping lives.
 */
export async function sendControl(send: () => Promise<string>): Promise<string> {
  try {
    return await send();
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError)
      throw new InvalidStateError(err.cause?.message ?? err.message);
    throw err;
  }
}
