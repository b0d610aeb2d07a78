import { z } from 'zod';
import { InvalidStateError, NotFoundError } from '../domain/errors';
import { workflowIds } from '../domain/names';
import { rolloutRequestSchema, type RolloutRequest } from '../domain/rollout';
import { rolloutOperations } from '../client/rollout-operations';
import { runUrl } from '../client/temporal';
import { rolloutProgress } from '../workflows/rollout-control';
import { runOf } from './operations';
import { forecastRollout } from '../client/rollout-forecast';
import { authorize, authorizeFleetRead } from './auth';
import { pathId, route, type ApiDeps, type ApiRoute, type RouteContext } from './route';

/** Rollouts listed at most: the newest first. */
const LIST_LIMIT = 50;

/**
 * Rolling patches are fleet-wide: anyone with a grant reads them, a fleet admin starts and
 * steers them. A rollout is read from its workflow: while it runs, its `progress` query (phase,
 * what it waits for, each host's state); once ended, its result, which has the same shape.
 */
export function rolloutRoutes(deps: ApiDeps): ApiRoute[] {
  const rollouts = (ctx: RouteContext<unknown>) => rolloutOperations(ctx.client, deps.config);

  /** A rollout's run: while it runs, `progress` is its query's answer; once done, its result. */
  async function rolloutOf(ctx: RouteContext<unknown>) {
    const name = pathId(ctx.params, 'name');
    const run = await runOf(ctx.client, deps.config, workflowIds.rollout(name), rolloutProgress);
    if (!run || run.type !== 'rollingPatch') throw new NotFoundError('rollout', name);
    return { name, ...run, progress: run.progress ?? run.result };
  }

  /** A control of a running rollout; its validator's refusal is a 409 with its reason. */
  const control = (
    url: string,
    summary: string,
    send: (ops: ReturnType<typeof rollouts>, name: string, params: Record<string, string>) => Promise<string>,
  ) =>
    route({
      method: 'POST',
      url,
      summary,
      body: z.object({}).strict(),
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'administer');
        const rollout = await rolloutOf(ctx);
        if (rollout.status !== 'RUNNING')
          throw new InvalidStateError(`rollout ${rollout.name} is ${rollout.status.toLowerCase()}`);
        return { message: await send(rollouts(ctx), pathId(ctx.params, 'name'), ctx.params) };
      },
    });

  return [
    route({
      method: 'GET',
      url: '/v1/rollouts',
      summary: 'Rolling patches, newest first (any grant)',
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        const list = [];
        for await (const run of ctx.client.workflow.list({
          // Visibility lists the newest first; the dev server's store refuses an ORDER BY.
          query: `WorkflowType = 'rollingPatch'`,
        })) {
          list.push({
            name: run.workflowId.replace(/^rollout\//, ''),
            status: run.status.name,
            startedAt: run.startTime,
            closedAt: run.closeTime,
            temporalUrl: runUrl(deps.config, run.workflowId, run.runId),
          });
          if (list.length >= LIST_LIMIT) break;
        }
        return list;
      },
    }),
    route({
      method: 'GET',
      url: '/v1/rollouts/:name',
      summary: "A rollout: phase, what it waits for, each host's state (any grant)",
      status: 200,
      events: true,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        return rolloutOf(ctx);
      },
    }),
    route<RolloutRequest>({
      method: 'POST',
      url: '/v1/rollouts',
      summary: 'Start a rolling patch (fleet admin)',
      body: rolloutRequestSchema.strict(),
      status: 202,
      async handle(ctx) {
        authorize(ctx.actor, 'administer');
        const started = await rollouts(ctx).start(ctx.body);
        return {
          workflowId: started.workflowId,
          runId: started.handle.firstExecutionRunId,
          temporalUrl: started.url,
          progressUrl: `/v1/rollouts/${ctx.body.name}`,
        };
      },
    }),
    route<RolloutRequest>({
      method: 'POST',
      url: '/v1/rollouts/forecast',
      summary:
        'Forecast a rolling patch on a simulated twin of its hosts: makespan, peak unavailability and each ' +
        "host's state; nothing real is touched (fleet grant); answered when the forecast ends",
      body: rolloutRequestSchema.strict(),
      status: 200,
      async handle(ctx) {
        authorizeFleetRead(ctx.actor, 'rollout forecasts');
        return forecastRollout(ctx.client, deps.config, deps.inv, ctx.body);
      },
    }),
    control('/v1/rollouts/:name/pause', 'Pause after the hosts in flight (fleet admin)', (o, n) =>
      o.pause(n),
    ),
    control('/v1/rollouts/:name/resume', 'Resume a paused or halted rollout (fleet admin)', (o, n) =>
      o.resume(n),
    ),
    control(
      '/v1/rollouts/:name/abort',
      'Start no new host; the hosts in flight finish (fleet admin)',
      (o, n) => o.abort(n),
    ),
    control(
      '/v1/rollouts/:name/hosts/:hostId/skip',
      'Skip a pending or failed host (fleet admin)',
      (o, n, p) => o.skip(n, pathId(p, 'hostId')),
    ),
    control('/v1/rollouts/:name/hosts/:hostId/retry', 'Try a failed host again (fleet admin)', (o, n, p) =>
      o.retry(n, pathId(p, 'hostId')),
    ),
  ];
}
