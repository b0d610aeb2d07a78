import rateLimit from '@fastify/rate-limit';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { parseInput } from '../domain/errors';
import { clientActingAs } from '../client/actor';
import { authenticate } from './auth';
import { sendError, HttpError } from './http-errors';
import { registerConsole } from './console-routes';
import { openApiDocument } from './openapi';
import { eventsOf } from './operation-events';
import { route, type ApiDeps, type ApiRoute } from './route';
import { backupRoutes } from './backup-routes';
import { hostRoutes } from './host-routes';
import { networkRoutes } from './network-routes';
import { backupPolicyRoutes } from './backup-policy-routes';
import { driftRoutes } from './drift-routes';
import { guestRoutes } from './guest-routes';
import { imageRoutes } from './image-routes';
import { projectRoutes } from './project-routes';
import { rolloutRoutes } from './rollout-routes';
import { tokenRoutes } from './token-routes';
import { vmRoutes } from './vm-routes';

export interface ApiServerOptions {
  /** Fastify's logger settings (pino); off in tests. */
  logger?: FastifyServerOptions['logger'];
  /** `ca`: client certificates it issued stand in for a bearer token (server/auth.ts). */
  https?: { cert: Buffer; key: Buffer; ca?: Buffer };
  /** Requests per minute from one address, on every route. */
  rateLimitPerMinute?: number;
  /** How often the operation event stream looks for progress. */
  eventIntervalMs?: number;
}

/** JSON bodies are small: none carries more than a VM's first-boot data (images come as streams). */
const BODY_LIMIT = 256 * 1024;

/**
 * virtflow's HTTP API over the typed client library. Every route authenticates a bearer token,
 * checks the caller's role in the resource's project, parses its body with the client's own
 * schema, and starts operations through a client stamped with the caller (client/actor.ts).
 */
export async function buildApiServer(deps: ApiDeps, opts: ApiServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: BODY_LIMIT,
    // Ids are DNS labels: a path is never long, and a long one is an attack, not a request.
    routerOptions: { maxParamLength: 100 },
    // A client certificate is asked for, not required: a bearer token still works without one.
    ...(opts.https
      ? {
          https: {
            ...opts.https,
            ...(opts.https.ca ? { requestCert: true, rejectUnauthorized: false } : {}),
          },
        }
      : {}),
  } as FastifyServerOptions);
  await app.register(rateLimit, { max: opts.rateLimitPerMinute ?? 1200, timeWindow: '1 minute' });
  // JSON only: Fastify also parses text/plain by default, which no route here takes (415 instead).
  app.removeContentTypeParser('text/plain');
  // An image upload's body is the image: handed to its route as a stream, never buffered (the
  // route caps its size as it arrives). Every other route parses JSON and refuses a stream.
  app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));
  app.setErrorHandler(sendError);
  app.setNotFoundHandler((req, reply) =>
    sendError(new HttpError(404, 'NotFound', `no route ${req.method} ${req.url.split('?')[0]}`), req, reply),
  );
  app.addHook('onSend', async (_req, reply) => {
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('cache-control', 'no-store');
  });

  const routes: ApiRoute[] = [
    ...tokenRoutes(deps),
    ...vmRoutes(deps),
    ...guestRoutes(deps),
    ...imageRoutes(deps),
    ...projectRoutes(deps),
    ...rolloutRoutes(deps),
    ...hostRoutes(deps),
    ...networkRoutes(deps),
    ...backupRoutes(deps),
    ...backupPolicyRoutes(deps),
    ...driftRoutes(deps),
  ].flatMap((r) => (r.events ? [r, eventsOf(r, opts.eventIntervalMs)] : [r]));
  const document = openApiDocument(routes);
  routes.push(
    route({
      method: 'GET',
      url: '/openapi.json',
      summary: 'This document',
      auth: false,
      status: 200,
      handle: async () => document,
    }),
  );

  registerConsole(app);
  for (const r of routes) {
    app.route({
      method: r.method,
      url: r.url,
      handler: async (req, reply) => {
        const actor = r.auth === false ? undefined : await authenticate(deps.inv, req);
        const body = r.body ? parseInput(r.body, req.body ?? {}, '') : undefined;
        // Built on first use: most requests only read the inventory.
        let acting: Client | undefined;
        const result = await r.handle({
          actor: actor!,
          get client() {
            return (acting ??= actor ? clientActingAs(deps.client, actor) : deps.client);
          },
          clientIn: (project) => clientActingAs(deps.client, actor!, { project }),
          params: req.params as Record<string, string>,
          body,
          req,
          reply,
        });
        if (!reply.sent) return reply.status(r.status).send(result);
      },
    });
  }
  return app;
}
