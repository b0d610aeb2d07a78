import { z } from 'zod';
import { readableProjects } from '../domain/access';
import { sumBytes } from '../domain/bytes';
import { newVmDisks } from '../domain/quota';
import { setHaRequestSchema } from '../domain/ha';
import { idSchema } from '../domain/ids';
import { parseInput } from '../domain/errors';
import { forceCompleteSchema, migrationRequestSchema, setBandwidthSchema } from '../domain/migration';
import {
  addNicRequestSchema,
  createVmRequestSchema,
  resizeDiskRequestSchema,
  stopVmRequestSchema,
  vmRefSchema,
  type CreateVmRequest,
} from '../domain/requests';
import { imageFor } from '../inventory/images';
import { checkQuotaRoom, diskGrowth } from '../inventory/quotas';
import type { VmDoc } from '../inventory/schemas';
import { pageOfVms } from '../inventory/vms';
import { vmOperations, type StartedOperation } from '../client/vm-operations';
import { operableVm, projectOf, readableVm } from './vm-access';
import { vmView } from './vm-view';
import { authorize } from './auth';
import { accepted, operationOf, readableOperation } from './operations';
import {
  linkNextPage,
  pageLimit,
  pathId,
  route,
  type ApiDeps,
  type ApiRoute,
  type RouteContext,
} from './route';

export function vmRoutes(deps: ApiDeps): ApiRoute[] {
  /** The VM operations, started in `project` as the caller. */
  const ops = (ctx: RouteContext<unknown>, project: string) =>
    vmOperations(ctx.clientIn(project), deps.config);
  type Ops = ReturnType<typeof ops>;
  /** A route that starts one operation on the VM in its path: operator in the VM's project, 202. */
  const operationRoute = <S extends z.ZodType>(
    method: 'POST' | 'DELETE',
    url: string,
    summary: string,
    body: S,
    start: (o: Ops, vmId: string, body: z.output<S>) => Promise<StartedOperation<unknown>>,
    /** A refusal answered at once (409) rather than by an operation bound to fail. */
    precheck?: (vm: VmDoc, body: z.output<S>) => Promise<void>,
  ) =>
    route<z.input<S>>({
      method,
      url,
      summary,
      body: body as z.ZodType<z.input<S>>,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        await precheck?.(vm, ctx.body as z.output<S>);
        return accepted(vm._id, await start(ops(ctx, projectOf(vm)), vm._id, ctx.body as z.output<S>));
      },
    });
  /** A control of a VM's running migration: operator; its refusal is a 409 with the reason. */
  const migrationControl = <S extends z.ZodType>(
    verb: string,
    summary: string,
    body: S,
    send: (o: Ops, vmId: string, body: z.output<S>) => Promise<string>,
  ) =>
    route<z.input<S>>({
      method: 'POST',
      url: `/v1/vms/:vmId/migration/${verb}`,
      summary,
      body: body as z.ZodType<z.input<S>>,
      status: 200,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return {
          outcome: await send(vmOperations(ctx.client, deps.config), vm._id, ctx.body as z.output<S>),
        };
      },
    });
  return [
    route({
      method: 'GET',
      url: '/v1/vms',
      summary:
        'The VMs of every project the caller holds a grant in, in id order, a page at a time ' +
        '(?limit= up to 1000, default 500; ?after=<last id>); a `Link: rel="next"` header names the next page',
      status: 200,
      async handle({ actor, req, reply }) {
        const page = parseInput(pageQuery, req.query, 'query');
        const vms = await pageOfVms(deps.inv, { ...page, projects: readableProjects(actor) });
        linkNextPage(reply, '/v1/vms', {}, page.limit, vms);
        return vms.map(vmView);
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
        // Refused at once as the create would refuse it: an unknown image, or another project's.
        const image = await imageFor(deps.inv, spec.image, spec.project);
        const diskBytes = sumBytes(newVmDisks(spec, image.virtualSizeBytes));
        await checkQuotaRoom(deps.inv, { ...spec, diskBytes });
        const op = await ops(ctx, spec.project).create(spec);
        return accepted(op.workflowId.slice('vm/'.length), op);
      },
    }),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/start',
      'Start a stopped VM (operator)',
      startBody,
      (o, vmId, body) => o.start({ ...body, vmId }),
    ),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/stop',
      'Stop a VM, gracefully first (operator)',
      stopBody,
      (o, vmId, body) => o.stop({ ...body, vmId }),
    ),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/migrate',
      'Live-migrate a VM (operator)',
      migrateBody,
      (o, vmId, body) => o.migrate({ ...body, vmId }),
    ),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/resize-disk',
      "Grow one of a VM's disks, within its project's disk quota (operator)",
      resizeBody,
      (o, vmId, body) => o.resizeDisk({ ...body, vmId }),
      async (vm, body) => {
        const growth = await diskGrowth(deps.inv, vm, body.disk ?? 0, body.sizeBytes);
        if (growth.after) await checkQuotaRoom(deps.inv, growth.subject, growth.was);
      },
    ),
    migrationControl(
      'abort',
      "Abort a VM's running migration; it stays on its source (operator)",
      abortBody,
      (o, vmId, b) => o.abortMigration(vmId, b.reason),
    ),
    migrationControl(
      'force-complete',
      "Finish a VM's running migration now: pause the guest until the copy ends, or switch to post-copy (operator)",
      forceCompleteSchema.strict(),
      (o, vmId, b) => o.forceCompleteMigration(vmId, b),
    ),
    migrationControl(
      'bandwidth',
      "Change a VM's running migration's bandwidth cap (operator)",
      setBandwidthSchema.strict(),
      (o, vmId, b) => o.setMaxBandwidth(vmId, b.maxBandwidthMiBps),
    ),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/nics',
      'Add a NIC on a network, hot-plugged into a running VM (operator)',
      addNicBody,
      (o, vmId, body) => o.addNic({ ...body, vmId }),
    ),
    route<Record<string, never>>({
      method: 'DELETE',
      url: '/v1/vms/:vmId/nics/:network',
      summary: "Remove a VM's NIC on a network; a running guest must release it (operator)",
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        const network = pathId(ctx.params, 'network');
        return accepted(vm._id, await ops(ctx, projectOf(vm)).removeNic({ vmId: vm._id, network }));
      },
    }),
    operationRoute(
      'POST',
      '/v1/vms/:vmId/ha',
      'Protect a VM with HA (restarted when its guest dies or its host is lost), or not (operator)',
      haBody,
      (o, vmId, body) => o.setHa({ ...body, vmId }),
    ),
    operationRoute(
      'DELETE',
      '/v1/vms/:vmId',
      'Delete a VM and its disks (operator)',
      stopBody,
      (o, vmId, body) => o.delete({ ...body, vmId }),
    ),
    route({
      method: 'GET',
      url: '/v1/vms/:vmId/operation',
      summary: "The VM's latest operation: its status and, while it runs, its progress",
      status: 200,
      events: true,
      async handle({ actor, params, client }) {
        return operationOf(
          client,
          deps,
          await readableOperation(deps, actor, client, pathId(params, 'vmId')),
        );
      },
    }),
  ];
}

// The path carries the VM; a body naming another field than these is refused, not ignored.
const startBody = vmRefSchema.omit({ vmId: true }).strict();
const stopBody = stopVmRequestSchema.omit({ vmId: true }).strict();
const migrateBody = migrationRequestSchema.omit({ vmId: true }).strict();
const resizeBody = resizeDiskRequestSchema.omit({ vmId: true }).strict();
const addNicBody = addNicRequestSchema.omit({ vmId: true }).strict();
const haBody = setHaRequestSchema.omit({ vmId: true }).strict();
const abortBody = z.strictObject({ reason: z.string().max(500).optional() });
const pageQuery = z.strictObject({ after: idSchema.optional(), limit: pageLimit });
