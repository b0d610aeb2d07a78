import { setTimeout as sleep } from 'node:timers/promises';
import { operationOf, readableOperation } from './operations';
import { pathId, route, type ApiDeps, type ApiRoute } from './route';

/**
 * A VM operation's progress as Server-Sent Events: a `progress` event whenever the answer
 * changes (checked every `intervalMs`), then one `end` event with the run's final status. The
 * console's migration view and `curl -N` follow an operation with it.
 */
export function operationEventsRoute(deps: ApiDeps, intervalMs = 1000): ApiRoute {
  return route({
    method: 'GET',
    url: '/v1/vms/:vmId/operation/events',
    summary: "The VM's current operation as Server-Sent Events (progress, then end)",
    status: 200,
    async handle({ actor, params, client, req, reply }) {
      const vmId = await readableOperation(deps, actor, client, pathId(params, 'vmId'));
      const first = await operationOf(client, deps, vmId);
      reply.hijack();
      const out = reply.raw;
      out.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      let closed = false;
      req.raw.on('close', () => (closed = true));
      let last = '';
      for (let op = first; !closed; op = await operationOf(client, deps, vmId)) {
        const data = JSON.stringify(op);
        if (op.status !== 'RUNNING') {
          out.end(`event: end\ndata: ${data}\n\n`);
          return;
        }
        if (data !== last) out.write(`event: progress\ndata: ${data}\n\n`);
        last = data;
        await sleep(intervalMs);
      }
      out.end();
    },
  });
}
