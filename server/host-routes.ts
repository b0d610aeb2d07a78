import { z } from 'zod';
import { allowed } from '../domain/access';
import { fenceRequestSchema } from '../domain/ha';
import { enterMaintenanceSchema, exitMaintenanceSchema } from '../domain/maintenance';
import { NotFoundError } from '../domain/errors';
import { workflowIds } from '../domain/names';
import { patchHostSchema } from '../domain/patch';
import { hostDetail, hostList, hostStatus } from '../inventory/host-views';
import { hostOperations } from '../client/host-operations';
import type { StartedOperation } from '../client/vm-operations';
import { progressQuery } from '../workflows/observability';
import { authorize } from './auth';
import { acceptedAt, runOf } from './operations';
import { pathId, route, type ApiDeps, type ApiRoute, type RouteContext } from './route';
import { projectOf } from './vm-access';

/**
 * Hosts are the fleet's: any grant reads them (placing a VM needs to know what exists), and only
 * a fleet admin takes one out of service, patches or fences it. A host's operations run as
 * `host/<hostId>` and are followed at its operation route, as a VM's are at its own.
 */
export function hostRoutes(deps: ApiDeps): ApiRoute[] {
  const ops = (ctx: RouteContext<unknown>) => hostOperations(ctx.client, deps.config);
  type Ops = ReturnType<typeof ops>;
  const hostOf = (ctx: RouteContext<unknown>) => pathId(ctx.params, 'hostId');
  /** A route that starts one operation on the host in its path: fleet admin, 202. */
  const operationRoute = <S extends z.ZodType>(
    path: string,
    summary: string,
    body: S,
    start: (o: Ops, hostId: string, body: z.output<S>) => Promise<StartedOperation<unknown>>,
  ) =>
    route<z.input<S>>({
      method: 'POST',
      url: `/v1/hosts/:hostId/${path}`,
      summary,
      body: body as z.ZodType<z.input<S>>,
      status: 202,
      async handle(ctx) {
        authorize(ctx.actor, 'administer');
        const hostId = hostOf(ctx);
        if (!(await deps.inv.hosts.findOne({ _id: hostId }))) throw new NotFoundError('host', hostId);
        const op = await start(ops(ctx), hostId, ctx.body as z.output<S>);
        return acceptedAt(`/v1/hosts/${hostId}/operation`, op);
      },
    });
  return [
    route({
      method: 'GET',
      url: '/v1/hosts',
      summary: 'Hosts with their state, liveness and capacity (any grant)',
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'read');
        return hostList(deps.inv);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/hosts/:hostId',
      summary: 'One host: facts, capacity, agent and the networks it carries (any grant)',
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        return hostDetail(deps.inv, hostOf(ctx));
      },
    }),
    route({
      method: 'GET',
      url: '/v1/hosts/:hostId/status',
      summary:
        "A host's liveness, fencing and HA state, with those of its VMs the caller may see (any grant)",
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        return hostStatus(deps.inv, deps.config, hostOf(ctx), (vm) =>
          allowed(ctx.actor, 'read', projectOf(vm)),
        );
      },
    }),
    route({
      method: 'GET',
      url: '/v1/hosts/:hostId/operation',
      summary:
        "The host's latest operation (maintenance, patch, fence): its status and, while it runs, its progress",
      status: 200,
      events: true,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        const hostId = hostOf(ctx);
        const run = await runOf(ctx.client, deps.config, workflowIds.host(hostId), progressQuery);
        if (!run) throw new NotFoundError('operation of host', hostId);
        return run;
      },
    }),
    operationRoute(
      'maintenance/enter',
      'Take a host out of service: placement skips it and its VMs are live-migrated off (fleet admin)',
      enterMaintenanceSchema.omit({ hostId: true }).strict(),
      (o, hostId, body) => o.enterMaintenance({ ...body, hostId }),
    ),
    operationRoute(
      'maintenance/exit',
      'Return a host to service, optionally bringing its VMs back (fleet admin)',
      exitMaintenanceSchema.omit({ hostId: true }).strict(),
      (o, hostId, body) => o.exitMaintenance({ ...body, hostId }),
    ),
    operationRoute(
      'patch',
      'Patch a host from the catalogue: maintenance, apply, restart, health check, back to service (fleet admin)',
      patchHostSchema.omit({ hostId: true, reportTo: true }).strict(),
      (o, hostId, body) => o.patch({ ...body, hostId }),
    ),
    operationRoute(
      'fence',
      'Fence a lost host, then restart its HA VMs elsewhere (fleet admin)',
      fenceRequestSchema.omit({ hostId: true }).strict(),
      (o, hostId, body) => o.fence({ ...body, hostId }),
    ),
    route<z.input<typeof resolveBody>>({
      method: 'POST',
      url: '/v1/hosts/:hostId/maintenance/resolve',
      summary:
        'Answer a host blocked entering maintenance: retry its unmovable VMs, or stop them (fleet admin)',
      body: resolveBody,
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'administer');
        return { message: await ops(ctx).resolveBlocked(hostOf(ctx), ctx.body.action) };
      },
    }),
  ];
}

const resolveBody = z.strictObject({
  action: z.enum(['retry', 'stop-them'], { error: 'must be retry or stop-them' }),
});
