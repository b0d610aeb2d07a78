import { ApplicationFailure } from '@temporalio/common';
import type { z } from 'zod';

/**
 * Operator-facing errors. Each has a stable `type` so a workflow can turn it into a
 * non-retryable ApplicationFailure and a client can recognise it on the other side.
 */
export class VirtflowError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = type;
  }

  toFailure(): ApplicationFailure {
    return ApplicationFailure.nonRetryable(this.message, this.type);
  }
}

/** Bad input: names the field, the value and the rule. Raised before any state changes. */
export class ValidationError extends VirtflowError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super('ValidationError', `${field}: ${message}`);
  }
}

export class NotFoundError extends VirtflowError {
  constructor(kind: string, id: string) {
    super('NotFoundError', `${kind} "${id}" does not exist`);
  }
}

/**
 * Validates `input` with `schema`; on failure throws a ValidationError naming the first
 * offending field (prefixed with `what`, e.g. "vm.memoryMiB") and the rule it broke.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = [what, ...issue.path.map(String)].filter(Boolean).join('.');
  // A bad record key (a label key): the key's own reason, not "Invalid key in record".
  if (issue.code === 'invalid_key')
    throw new ValidationError(field, issue.issues[0]?.message ?? issue.message);
  const value = issue.path.reduce<unknown>(
    (v, key) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[key] : undefined),
    input,
  );
  const shown = value === undefined ? '' : ` (got ${JSON.stringify(value)})`;
  throw new ValidationError(field, `${issue.message}${shown}`);
}

/** No host can take the request; `reasons` says why each host was rejected. */
export class InsufficientCapacityError extends VirtflowError {
  constructor(
    what: string,
    readonly reasons: Record<string, string[]>,
  ) {
    const perHost = Object.entries(reasons)
      .map(([host, why]) => `${host}: ${why.join('; ')}`)
      .join(' | ');
    super(
      'InsufficientCapacityError',
      `no host can take ${what}${perHost ? ` — ${perHost}` : ' — no hosts registered'}`,
    );
  }
}

/** Another operation holds the VM (or host): Temporal runs one operation per resource. */
export class ResourceBusyError extends VirtflowError {
  constructor(kind: 'VM' | 'host', id: string, operation: string, runId?: string) {
    super(
      'ResourceBusyError',
      `${kind} busy: ${operation}${runId ? ` ${runId}` : ''} is running on ${kind === 'VM' ? 'vm' : 'host'} ${id}`,
    );
  }
}

/** The VM is not in a state that allows the operation. */
export class InvalidStateError extends VirtflowError {
  constructor(message: string) {
    super('InvalidStateError', message);
  }
}

/** A named pre-check of an operation failed; `type` names the check for the operator. */
export class PreCheckError extends VirtflowError {
  constructor(type: string, message: string) {
    super(type, message);
  }
}

/** The operation's error types that retrying cannot fix. */
export const nonRetryableErrorTypes = [
  'ValidationError',
  'NotFoundError',
  'InsufficientCapacityError',
  'InvalidStateError',
  'ImageChecksumError',
  'ResourceBusyError',
  'VmNotRunningError',
  'SourceMismatchError',
  'SameHostError',
  'TargetUnavailableError',
  'IncompatibleHostError',
  'DatastoreNotVisibleError',
  'VerificationError',
  'GuestBootError',
  'LineageUncertainError',
  'BackupFailedError',
  'BackupCorruptError',
  'RestoreMismatchError',
  'MigrationUnfinishedError',
];
