import type { Client } from '@temporalio/client';
import { z } from 'zod';
import { readableProjects } from '../domain/access';
import { NotFoundError, parseInput } from '../domain/errors';
import { migrationRequestSchema } from '../domain/migration';
import { workflowIds } from '../domain/names';
import {
  createVmRequestSchema,
  stopVmRequestSchema,
  vmRefSchema,
  type CreateVmRequest,
} from '../domain/requests';
import { listHosts } from '../inventory/hosts';
import type { VmDoc } from '../inventory/schemas';
import { listVms } from '../inventory/vms';
import { runUrl } from '../client/temporal';
import { vmOperations, type StartedOperation } from '../client/vm-operations';
import { progressQuery } from '../workflows/observability';
import { operableVm, projectOf, readableVm } from './vm-access';
import { authorize } from './auth';
import { precheckQuota } from './project-routes';
import { pathId, route, type ApiDeps, type ApiRoute } from './route';

/** What the API shows of a VM: its state and placement, not the inventory's bookkeeping. */
function vmView(vm: VmDoc) {
  return {
    vmId: vm._id,
    project: projectOf(vm),
    state: vm.state,
    host: vm.host,
    image: vm.image,
    memoryMiB: vm.memoryMiB,
    vcpus: vm.vcpus,
    labels: vm.labels,
    nics: (vm.guest.nics ?? []).map(({ network, mac, ip }) => ({ network, mac, ip })),
    ha: vm.ha ?? { enabled: false, priority: 0 },
    migration: vm.migration ? { target: vm.migration.target, phase: vm.migration.phase } : null,
    createdAt: vm.createdAt,
  };
}

/** A started operation, as a 202 answers it: where to follow it. */
const accepted = (vmId: string, op: StartedOperation<unknown>) => ({
  workflowId: op.workflowId,
  runId: op.runId,
  temporalUrl: op.url,
  progressUrl: `/v1/vms/${vmId}/operation`,
});

export function vmRoutes(deps: ApiDeps): ApiRoute[] {
  const ops = (ctx: { client: Client }) => vmOperations(ctx.client, deps.config);
  return [
    route({
      method: 'GET',
      url: '/v1/hosts',
      summary: 'Hosts with their state and capacity (any grant)',
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'read');
        return (await listHosts(deps.inv)).map((h) => ({
          hostId: h._id,
          state: h.state,
          maintenance: h.maintenanceState,
          cluster: h.cluster,
          labels: h.labels,
          allocatable: h.allocatable,
          patchLevel: h.patchLevel,
          heartbeatAt: h.agent.heartbeatAt,
        }));
      },
    }),
    route({
      method: 'GET',
      url: '/v1/vms',
      summary: 'The VMs of every project the caller holds a grant in',
      status: 200,
      async handle({ actor }) {
        const projects = readableProjects(actor);
        const vms = await listVms(deps.inv);
        return vms.filter((vm) => projects === 'all' || projects.includes(projectOf(vm))).map(vmView);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/vms/:vmId',
      summary: 'One VM',
      status: 200,
      async handle({ actor, params }) {
        return vmView(await readableVm(deps, actor, pathId(params, 'vmId')));
      },
    }),
    route<CreateVmRequest>({
      method: 'POST',
      url: '/v1/vms',
      summary: 'Create a VM in a project (operator); 202 with the operation',
      body: createVmRequestSchema.strict(),
      status: 202,
      async handle(ctx) {
        const spec = parseInput(createVmRequestSchema, ctx.body, '');
        authorize(ctx.actor, 'operate', spec.project);
        await precheckQuota(deps.inv, spec);
        const op = await ops(ctx).create(spec);
        return accepted(op.workflowId.slice('vm/'.length), op);
      },
    }),
    route<z.input<typeof startBody>>({
      method: 'POST',
      url: '/v1/vms/:vmId/start',
      summary: 'Start a stopped VM (operator)',
      body: startBody,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return accepted(vm._id, await ops(ctx).start({ ...ctx.body, vmId: vm._id }));
      },
    }),
    route<z.input<typeof stopBody>>({
      method: 'POST',
      url: '/v1/vms/:vmId/stop',
      summary: 'Stop a VM, gracefully first (operator)',
      body: stopBody,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return accepted(vm._id, await ops(ctx).stop({ ...ctx.body, vmId: vm._id }));
      },
    }),
    route<z.input<typeof migrateBody>>({
      method: 'POST',
      url: '/v1/vms/:vmId/migrate',
      summary: 'Live-migrate a VM (operator)',
      body: migrateBody,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return accepted(vm._id, await ops(ctx).migrate({ ...ctx.body, vmId: vm._id }));
      },
    }),
    route<z.input<typeof abortBody>>({
      method: 'POST',
      url: '/v1/vms/:vmId/migration/abort',
      summary: "Abort a VM's running migration (operator)",
      body: abortBody,
      status: 200,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return { outcome: await ops(ctx).abortMigration(vm._id, ctx.body.reason) };
      },
    }),
    route({
      method: 'DELETE',
      url: '/v1/vms/:vmId',
      summary: 'Delete a VM and its disks (operator)',
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return accepted(vm._id, await ops(ctx).delete({ vmId: vm._id }));
      },
    }),
    route({
      method: 'GET',
      url: '/v1/vms/:vmId/operation',
      summary: "The VM's latest operation: its status and, while it runs, its progress",
      status: 200,
      async handle({ actor, params, client }) {
        const vm = await readableVm(deps, actor, pathId(params, 'vmId'));
        return operationOf(client, deps, vm._id);
      },
    }),
  ];
}

// The path carries the VM; a body naming another field than these is refused, not ignored.
const startBody = vmRefSchema.omit({ vmId: true }).strict();
const stopBody = stopVmRequestSchema.omit({ vmId: true }).strict();
const migrateBody = migrationRequestSchema.omit({ vmId: true }).strict();
const abortBody = z.strictObject({ reason: z.string().max(500).optional() });

/** The latest run under `vm/<vmId>`: status, link, and the `progress` query's answer while it runs. */
export async function operationOf(client: Client, deps: ApiDeps, vmId: string) {
  const workflowId = workflowIds.vm(vmId);
  const handle = client.workflow.getHandle(workflowId);
  const run = await handle.describe().catch(() => undefined);
  if (!run) throw new NotFoundError('operation of vm', vmId);
  const running = run.status.name === 'RUNNING';
  return {
    workflowId,
    runId: run.runId,
    type: run.type,
    status: run.status.name,
    actor: run.memo?.actor,
    temporalUrl: runUrl(deps.config, workflowId, run.runId),
    progress: running ? await handle.query(progressQuery).catch(() => undefined) : undefined,
  };
}
