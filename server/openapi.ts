import { z } from 'zod';
import { AGENT_VERSION } from '../worker/version';
import type { ApiRoute } from './route';

/**
 * The OpenAPI 3.1 document of the routes the server registers, built from the same table and
 * the same zod schemas, so the document cannot drift from what the server accepts.
 */
export function openApiDocument(routes: ApiRoute[]) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:(\w+)/g, '{$1}');
    const params = [...r.url.matchAll(/:(\w+)/g)].map(([, name]) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string', pattern: '^[a-z0-9]([a-z0-9-]*[a-z0-9])?$', maxLength: 63 },
    }));
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(params.length ? { parameters: params } : {}),
      ...(r.body
        ? {
            requestBody: {
              required: true,
              content: {
                'application/json': {
                  schema: z.toJSONSchema(r.body, { io: 'input', unrepresentable: 'any' }),
                },
              },
            },
          }
        : {}),
      ...(r.auth === false ? { security: [] } : {}),
      responses: {
        [r.status]: { description: r.status === 202 ? 'the operation started' : 'done' },
        ...(r.auth === false
          ? {}
          : { 401: { description: 'no valid token' }, 403: { description: 'not allowed' } }),
        400: { description: 'bad input: names the field and the reason' },
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'virtflow API', version: AGENT_VERSION },
    components: { securitySchemes: { token: { type: 'http', scheme: 'bearer' } } },
    security: [{ token: [] }],
    paths,
  };
}
