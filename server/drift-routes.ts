import { z } from 'zod';
import { parseInput } from '../domain/errors';
import { auditOperations, RECONCILE_SCHEDULE } from '../client/audit-operations';
import { NotFoundError } from '../domain/errors';
import { progressQuery } from '../workflows/observability';
import { acceptedAt, runOf } from './operations';
import { listDrift } from '../inventory/drift';
import { authorize, authorizeFleetRead } from './auth';
import { linkNextPage, pageLimit, pathId, route, type ApiDeps, type ApiRoute } from './route';

const listQuery = z.strictObject({
  all: z.enum(['true', 'false']).optional(),
  after: z.string().min(1).max(200).optional(),
  limit: pageLimit,
});

/** What the reconciler found between the inventory and the hosts, and the fixes it proposes. */
export function driftRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/drift',
      summary:
        'Open and fixed drift, last seen first; ?all=true adds resolved; a page at a time (?limit=, ?after=<last id>, ' +
        'a `Link: rel="next"` header names the next) (fleet grant)',
      status: 200,
      async handle({ actor, req, reply }) {
        // About hosts and what runs on them, whatever project owns it.
        authorizeFleetRead(actor, 'drift');
        const q = parseInput(listQuery, req.query, 'query');
        const docs = await listDrift(deps.inv, { all: q.all === 'true', after: q.after, limit: q.limit });
        linkNextPage(reply, '/v1/drift', { all: q.all }, q.limit, docs);
        return docs.map((d) => ({
          id: d._id,
          kind: d.kind,
          hostId: d.hostId,
          state: d.state,
          subject: d.subject,
          firstSeenAt: d.createdAt,
          lastSeenAt: d.lastSeenAt,
          message: d.message,
          fix: d.fix,
        }));
      },
    }),
    route({
      method: 'POST',
      url: '/v1/drift/:id/fix',
      summary: 'Apply the fix an open drift proposes, and wait for it (fleet admin)',
      body: z.strictObject({}),
      status: 200,
      async handle({ actor, client, params }) {
        authorize(actor, 'administer');
        return auditOperations(client, deps.config).fix(params.id);
      },
    }),
    route<Record<string, never>>({
      method: 'POST',
      url: '/v1/reconcile',
      summary:
        'Run one reconciliation pass over every host now (fleet admin); followed at /v1/reconcile/<pass>',
      body: z.strictObject({}),
      status: 202,
      async handle({ actor, client }) {
        authorize(actor, 'administer');
        const pass = await auditOperations(client, deps.config).run();
        return acceptedAt(`/v1/${pass.workflowId}`, pass);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/reconcile/:pass',
      summary: 'A reconciliation pass: its status, and what it found per host and fleet-wide (fleet grant)',
      status: 200,
      events: true,
      async handle({ actor, client, params }) {
        authorizeFleetRead(actor, 'reconciliation passes');
        const pass = pathId(params, 'pass');
        const run = await runOf(client, deps.config, `reconcile/${pass}`, progressQuery);
        if (!run) throw new NotFoundError('reconciliation pass', pass);
        return run;
      },
    }),
    route<{ everySec: number }>({
      method: 'PUT',
      url: '/v1/reconcile/schedule',
      summary: 'Reconcile every `everySec` seconds (the Temporal Schedule "reconcile") (fleet admin)',
      body: z.strictObject({ everySec: z.number().int() }),
      status: 200,
      async handle({ actor, client, body }) {
        authorize(actor, 'administer');
        await auditOperations(client, deps.config).ensureSchedule(body.everySec);
        return { schedule: RECONCILE_SCHEDULE, everySec: body.everySec };
      },
    }),
  ];
}
