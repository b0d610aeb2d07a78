import { VirtflowError } from '../domain/errors';

/**
 * Wraps every activity so an operator-facing error (VirtflowError) leaves the activity as a
 * non-retryable ApplicationFailure of its own type: the workflow and the client see the type
 * and the message, and Temporal does not retry what retrying cannot fix.
 */
export function withOperatorErrors<T extends { [K in keyof T]: (...args: never[]) => Promise<unknown> }>(
  activities: T,
): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities) as [string, (...args: never[]) => Promise<unknown>][]) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (err) {
        if (err instanceof VirtflowError) throw err.toFailure();
        throw err;
      }
    };
  }
  return wrapped as T;
}
