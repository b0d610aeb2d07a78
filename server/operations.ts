import type { Client } from '@temporalio/client';
import type { QueryDefinition } from '@temporalio/common';
import type { Config } from '../domain/config';
import { allowed, type Actor } from '../domain/access';
import { NotFoundError } from '../domain/errors';
import { workflowIds } from '../domain/names';
import { runUrl } from '../client/temporal';
import { progressQuery } from '../workflows/observability';
import type { StartedOperation } from '../client/vm-operations';
import type { ApiDeps } from './route';
import { projectOf } from './vm-access';

/** A started operation, as a 202 answers it: where to follow it (`progressUrl`). */
export const acceptedAt = (progressUrl: string, op: StartedOperation<unknown>) => ({
  workflowId: op.workflowId,
  runId: op.runId,
  temporalUrl: op.url,
  progressUrl,
});

/** A started operation on a VM, followed at the VM's operation route. */
export const accepted = (vmId: string, op: StartedOperation<unknown>) =>
  acceptedAt(`/v1/vms/${vmId}/operation`, op);

/**
 * The id of a VM whose latest operation the caller may read: the project the operation was
 * started in (its memo), else the VM's own. 404 otherwise, as for a VM it may not see.
 */
export async function readableOperation(
  deps: ApiDeps,
  actor: Actor,
  client: Client,
  vmId: string,
): Promise<string> {
  const run = await client.workflow
    .getHandle(workflowIds.vm(vmId))
    .describe()
    .catch(() => undefined);
  const vm = await deps.inv.vms.findOne({ _id: vmId });
  const project = (run?.memo?.project as string | undefined) ?? (vm ? projectOf(vm) : undefined);
  if (!run || !project || !allowed(actor, 'read', project)) throw new NotFoundError('operation of vm', vmId);
  return vmId;
}

/** A failed run's reason as an operator reads it: the innermost cause's type and message. */
function failureOf(err: unknown): { type?: string; message: string } {
  let e = err as { cause?: unknown; type?: string; message: string };
  while (e.cause) e = e.cause as typeof e;
  return { type: e.type, message: e.message };
}

/**
 * The latest run under `workflowId` as the API shows it: status, link, and while it runs the
 * answer of its progress query; once ended, its result or the operator's reason it failed (the
 * innermost message). `runId` is the first run's, as a start answers it: a run that continues
 * as new is the same operation to a client following it.
 */
export async function runOf(
  client: Client,
  config: Config,
  workflowId: string,
  progress: QueryDefinition<unknown>,
) {
  const handle = client.workflow.getHandle(workflowId);
  const run = await handle.describe().catch(() => undefined);
  if (!run) return undefined;
  const status = run.status.name;
  return {
    workflowId,
    runId: run.raw.workflowExecutionInfo?.firstRunId || run.runId,
    type: run.type,
    status,
    actor: run.memo?.actor,
    startedAt: run.startTime,
    closedAt: run.closeTime,
    temporalUrl: runUrl(config, workflowId, run.runId),
    progress: status === 'RUNNING' ? await handle.query(progress).catch(() => undefined) : undefined,
    ...(status === 'COMPLETED' ? { result: await handle.result() } : {}),
    ...(status === 'FAILED'
      ? {
          failure: await handle.result().then(
            () => undefined,
            (err: unknown) => failureOf(err),
          ),
        }
      : {}),
  };
}

/** The latest run under `vm/<vmId>`. */
export async function operationOf(client: Client, deps: ApiDeps, vmId: string) {
  const run = await runOf(client, deps.config, workflowIds.vm(vmId), progressQuery);
  if (!run) throw new NotFoundError('operation of vm', vmId);
  return run;
}
