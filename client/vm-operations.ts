import {
  WorkflowExecutionAlreadyStartedError,
  type Client,
  type Workflow,
  type WorkflowStartOptions,
  type WorkflowHandle,
} from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput, ResourceBusyError } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../domain/names';
import {
  addNicRequestSchema,
  createVmRequestSchema,
  deleteVmRequestSchema,
  removeNicRequestSchema,
  resizeDiskRequestSchema,
  stopVmRequestSchema,
  vmRefSchema,
  type AddNicRequest,
  type CreateVmRequest,
  type DeleteVmRequest,
  type RemoveNicRequest,
  type ResizeDiskRequest,
  type StopVmRequest,
  type VmRef,
} from '../domain/requests';
import type {
  addNic,
  createVm,
  deleteVm,
  liveMigration,
  removeNic,
  resizeDisk,
  setVmHa,
  startVm,
  stopVm,
} from '../workflows';
import { formatBytes } from '../domain/bytes';
import { inspectGuest, readConsoleLog, screenshotGuest } from '../workflows/inspect-guest';
import { consoleBytesSchema, type GuestInfo } from '../domain/guest';
import { setHaRequestSchema, type SetHaRequest } from '../domain/ha';
import {
  migrationRequestSchema,
  setBandwidthSchema,
  forceCompleteSchema,
  type ForceCompleteRequest,
  type MigrationRequest,
} from '../domain/migration';
import {
  abortMigration,
  forceCompleteMigration,
  setMaxBandwidth,
  type MigrationProgress,
} from '../workflows/migration-control';
import { progressQuery } from '../workflows/observability';
import { InvalidStateError } from '../domain/errors';
import { runUrl } from './temporal';
import { sendControl } from './updates';

export interface StartedOperation<R> {
  workflowId: string;
  runId: string;
  url: string;
  handle: WorkflowHandle;
  result(): Promise<R>;
}

/**
 * Starts an operation under its resource's id (`vm/<vmId>`, `host/<hostId>`). Temporal refuses
 * a second running workflow with that id, which is what makes "one operation per resource"
 * hold; the refusal becomes a ResourceBusyError naming the operation that holds it.
 */
export async function startResourceWorkflow<W extends Workflow>(
  client: Client,
  config: Config,
  resource: { kind: 'VM' | 'host'; id: string },
  workflowType: string,
  args: Parameters<W>,
  summary: string,
): Promise<StartedOperation<Awaited<ReturnType<W>>>> {
  const workflowId = resource.kind === 'VM' ? workflowIds.vm(resource.id) : workflowIds.host(resource.id);
  try {
    const handle = await client.workflow.start<W>(workflowType, {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId,
      args,
      staticSummary: summary,
      workflowIdConflictPolicy: 'FAIL',
      // The generic W hides the conditional `args` type from the compiler; callers pass W's own parameters.
    } as unknown as WorkflowStartOptions<W>);
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
      throw new ResourceBusyError(resource.kind, resource.id, running.type, running.runId);
    }
    throw err;
  }
}

/** Starts a VM operation under `vm/<vmId>` (see startResourceWorkflow). */
export function startVmWorkflow<W extends Workflow>(
  client: Client,
  config: Config,
  workflowType: string,
  vmId: string,
  args: Parameters<W>,
  summary: string,
): Promise<StartedOperation<Awaited<ReturnType<W>>>> {
  return startResourceWorkflow<W>(client, config, { kind: 'VM', id: vmId }, workflowType, args, summary);
}

/** The running migration of a VM, or a clear error when the VM is doing something else. */
async function runningMigration(client: Client, vmId: string): Promise<WorkflowHandle> {
  const handle = client.workflow.getHandle(workflowIds.vm(vmId));
  const running = await handle.describe().catch(() => undefined);
  if (!running || running.status.name !== 'RUNNING' || running.type !== 'liveMigration') {
    throw new InvalidStateError(
      `vm ${vmId} has no migration running${running?.status.name === 'RUNNING' ? ` (it is running ${running.type})` : ''}`,
    );
  }
  return handle;
}

/** Sends a control Update to a VM's running migration (see sendControl). */
async function control(
  client: Client,
  vmId: string,
  send: (h: WorkflowHandle) => Promise<string>,
): Promise<string> {
  const handle = await runningMigration(client, vmId);
  return sendControl(() => send(handle));
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
    async resizeDisk(req: ResizeDiskRequest) {
      const spec = parseInput(resizeDiskRequestSchema, req, '');
      return startVmWorkflow<typeof resizeDisk>(
        client,
        config,
        'resizeDisk',
        spec.vmId,
        [spec],
        `Grow the disk of VM ${spec.vmId} to ${formatBytes(spec.sizeBytes)}`,
      );
    },
    async addNic(req: AddNicRequest) {
      const spec = parseInput(addNicRequestSchema, req, '');
      return startVmWorkflow<typeof addNic>(
        client,
        config,
        'addNic',
        spec.vmId,
        [spec],
        `Add a NIC on network ${spec.network} to VM ${spec.vmId}${spec.ip ? ` (${spec.ip})` : ''}`,
      );
    },
    async removeNic(req: RemoveNicRequest) {
      const spec = parseInput(removeNicRequestSchema, req, '');
      return startVmWorkflow<typeof removeNic>(
        client,
        config,
        'removeNic',
        spec.vmId,
        [spec],
        `Remove the NIC on network ${spec.network} from VM ${spec.vmId}`,
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
    async migrate(req: MigrationRequest) {
      const spec = parseInput(migrationRequestSchema, req, '');
      return startVmWorkflow<typeof liveMigration>(
        client,
        config,
        'liveMigration',
        spec.vmId,
        [spec],
        `Live-migrate VM ${spec.vmId} ${spec.to ? `to ${spec.to}` : '(placement picks the target)'} at up to ${spec.policy.maxBandwidthMiBps} MiB/s${spec.policy.postCopy ? ', post-copy allowed' : ''}`,
      );
    },
    async abortMigration(vmId: string, reason?: string): Promise<string> {
      return control(client, vmId, (h) => h.executeUpdate(abortMigration, { args: [{ reason }] }));
    },
    async forceCompleteMigration(vmId: string, req: ForceCompleteRequest = {}): Promise<string> {
      const spec = parseInput(forceCompleteSchema, req, '');
      return control(client, vmId, (h) => h.executeUpdate(forceCompleteMigration, { args: [spec] }));
    },
    async setMaxBandwidth(vmId: string, maxBandwidthMiBps: number): Promise<string> {
      const spec = parseInput(setBandwidthSchema, { maxBandwidthMiBps }, '');
      return control(client, vmId, (h) => h.executeUpdate(setMaxBandwidth, { args: [spec] }));
    },
    async setHa(req: SetHaRequest) {
      const spec = parseInput(setHaRequestSchema, req, '');
      return startVmWorkflow<typeof setVmHa>(
        client,
        config,
        'setVmHa',
        spec.vmId,
        [spec],
        spec.enabled
          ? `Protect VM ${spec.vmId} with HA (priority ${spec.priority})`
          : `Turn HA off for VM ${spec.vmId}`,
      );
    },
    /** Where the VM's current operation is, from its `progress` query. */
    async progress(vmId: string): Promise<MigrationProgress> {
      return client.workflow
        .getHandle(workflowIds.vm(vmId))
        .query(progressQuery) as Promise<MigrationProgress>;
    },
    /**
     * Hostname, OS and addresses from the guest agent of a VM running on `host`. Its own
     * workflow id, beside `vm/<vmId>`, so it answers while another operation holds the VM.
     */
    async guestInfo(vmId: string, host: string): Promise<GuestInfo> {
      return client.workflow.execute(inspectGuest, {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: `${workflowIds.vm(vmId)}/guest-info/${Date.now().toString(36)}`,
        args: [{ vmId, host }],
        staticSummary: `Ask the guest agent of VM ${vmId} on ${host}`,
        workflowExecutionTimeout: '1 minute',
      });
    },

    /** The end of a VM's console log on `host`; beside `vm/<vmId>` like guestInfo. */
    async consoleLog(vmId: string, host: string, bytes = 16 * 1024): Promise<string> {
      const { text } = await client.workflow.execute(readConsoleLog, {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: `${workflowIds.vm(vmId)}/console-log/${Date.now().toString(36)}`,
        args: [{ vmId, host, bytes: parseInput(consoleBytesSchema, bytes, 'bytes') }],
        staticSummary: `Read the console log of VM ${vmId} on ${host}`,
        workflowExecutionTimeout: '1 minute',
      });
      return text;
    },

    /** The screen of a VM running on `host`, as a PNG; beside `vm/<vmId>` like guestInfo. */
    async screenshot(vmId: string, host: string): Promise<{ png: Buffer; width: number; height: number }> {
      const shot = await client.workflow.execute(screenshotGuest, {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: `${workflowIds.vm(vmId)}/screenshot/${Date.now().toString(36)}`,
        args: [{ vmId, host }],
        staticSummary: `Capture the screen of VM ${vmId} on ${host}`,
        workflowExecutionTimeout: '1 minute',
      });
      return { png: Buffer.from(shot.pngBase64, 'base64'), width: shot.width, height: shot.height };
    },
  };
}
