import { setTimeout as sleep } from 'node:timers/promises';
import { route, type ApiRoute } from './route';

/**
 * The twin of a route that answers a run (a VM's or a host's operation, a rollout, a backup's
 * verification, a reconciliation pass) at `<its url>/events`: the same answer as Server-Sent
 * Events, a `progress` event whenever it changes (read every `intervalMs`), then one `end` event
 * with the run's final status. The console and `curl -N` follow an operation with it. It reads
 * through the route's own handler, so who may read it is decided in one place.
 */
export function eventsOf(r: ApiRoute, intervalMs = 1000): ApiRoute {
  return route({
    method: 'GET',
    url: `${r.url}/events`,
    summary: `${r.summary}: as Server-Sent Events (progress, then end)`,
    status: 200,
    async handle(ctx) {
      const read = async () => (await r.handle(ctx)) as { status: string };
      const first = await read();
      const { req, reply } = ctx;
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
      for (let run = first; !closed; run = await read()) {
        const data = JSON.stringify(run);
        if (run.status !== 'RUNNING') {
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
