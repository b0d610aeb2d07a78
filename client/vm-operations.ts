import { WorkflowExecutionAlreadyStartedError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput, ResourceBusyError } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../domain/names';
import {
  createVmRequestSchema,
  deleteVmRequestSchema,
  stopVmRequestSchema,
  vmRefSchema,
  type CreateVmRequest,
  type DeleteVmRequest,
  type StopVmRequest,
  type VmRef,
} from '../domain/requests';
import type { createVm, deleteVm, startVm, stopVm } from '../workflows';
import { runUrl } from './temporal';

export interface StartedOperation<R> {
  workflowId: string;
  runId: string;
  url: string;
  handle: WorkflowHandle;
  result(): Promise<R>;
}

type VmWorkflow = typeof createVm | typeof startVm | typeof stopVm | typeof deleteVm;

/**
 * Starts a VM operation under the id `vm/<vmId>`. Temporal refuses a second running workflow
 * with that id, which is what makes "one operation per VM" hold; the refusal becomes a
 * ResourceBusyError naming the operation that holds the VM.
 */
async function startVmWorkflow<W extends VmWorkflow>(
  client: Client,
  config: Config,
  workflowType: string,
  vmId: string,
  args: Parameters<W>,
  summary: string,
): Promise<StartedOperation<Awaited<ReturnType<W>>>> {
  const workflowId = workflowIds.vm(vmId);
  try {
    const handle = await client.workflow.start<W>(workflowType, {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId,
      args,
      staticSummary: summary,
      workflowIdConflictPolicy: 'FAIL',
    });
    return {
      workflowId,
      runId: handle.firstExecutionRunId,
      url: runUrl(config, workflowId, handle.firstExecutionRunId),
      handle,
      result: () => handle.result() as Promise<Awaited<ReturnType<W>>>,
    };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      const running = await client.workflow.getHandle(workflowId).describe();
      throw new ResourceBusyError('VM', vmId, running.type, running.runId);
    }
    throw err;
  }
}

/** The typed client for VM operations; the CLI and tests are built on it. */
export function vmOperations(client: Client, config: Config) {
  return {
    async create(req: CreateVmRequest) {
      const spec = parseInput(createVmRequestSchema, req, '');
      return startVmWorkflow<typeof createVm>(
        client,
        config,
        'createVm',
        spec.vmId,
        [spec],
        `Create VM ${spec.vmId} (${spec.memoryMiB} MiB, ${spec.vcpus} vCPU) from ${spec.image}${spec.host ? ` on ${spec.host}` : ''}`,
      );
    },
    async start(req: VmRef) {
      const spec = parseInput(vmRefSchema, req, '');
      return startVmWorkflow<typeof startVm>(
        client,
        config,
        'startVm',
        spec.vmId,
        [spec],
        `Start VM ${spec.vmId}`,
      );
    },
    async stop(req: StopVmRequest) {
      const spec = parseInput(stopVmRequestSchema, req, '');
      return startVmWorkflow<typeof stopVm>(
        client,
        config,
        'stopVm',
        spec.vmId,
        [spec],
        `Stop VM ${spec.vmId} (forced after ${spec.gracefulTimeoutSec} s)`,
      );
    },
    async delete(req: DeleteVmRequest) {
      const spec = parseInput(deleteVmRequestSchema, req, '');
      return startVmWorkflow<typeof deleteVm>(
        client,
        config,
        'deleteVm',
        spec.vmId,
        [spec],
        `Delete VM ${spec.vmId}`,
      );
    },
  };
}
