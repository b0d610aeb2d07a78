import { z } from 'zod';
import { parseInput } from '../domain/errors';
import { auditOperations } from '../client/audit-operations';
import { listDrift } from '../inventory/drift';
import { authorize, authorizeFleetRead } from './auth';
import { route, type ApiDeps, type ApiRoute } from './route';

const listQuery = z.strictObject({ all: z.enum(['true', 'false']).optional() });

/** What the reconciler found between the inventory and the hosts, and the fixes it proposes. */
export function driftRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/drift',
      summary: 'Open and fixed drift, newest first; ?all=true adds resolved (fleet grant)',
      status: 200,
      async handle({ actor, req }) {
        // About hosts and what runs on them, whatever project owns it.
        authorizeFleetRead(actor, 'drift');
        const all = parseInput(listQuery, req.query, 'query').all === 'true';
        const docs = await listDrift(deps.inv, { all, limit: 500 });
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
  ];
}
