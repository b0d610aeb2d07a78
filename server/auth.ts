import type { FastifyRequest } from 'fastify';
import { allowed, type Action, type Actor } from '../domain/access';
import { authenticateToken } from '../inventory/api-tokens';
import type { Inventory } from '../inventory/db';
import { HttpError } from './http-errors';

/**
 * Who is calling: the bearer token in the `Authorization` header (never a cookie, so a page on
 * another site cannot make a browser act for its user). Every refusal is the same 401 to the
 * caller, whatever the reason; the server's log keeps the reason.
 */
export async function authenticate(inv: Inventory, req: FastifyRequest): Promise<Actor> {
  const header = req.headers.authorization;
  const m = header ? /^Bearer ([^\s]+)$/.exec(header) : null;
  if (!m) throw new HttpError(401, 'Unauthenticated', 'a bearer token is required');
  const result = await authenticateToken(inv, m[1]);
  if (typeof result === 'string') {
    req.log.warn({ refusal: result }, 'token refused');
    throw new HttpError(401, 'Unauthenticated', 'the token is not valid');
  }
  return result;
}

/** Refuses (403) what `actor` may not do in `project` (the fleet when omitted). */
export function authorize(actor: Actor, action: Action, project?: string): void {
  if (!allowed(actor, action, project))
    throw new HttpError(
      403,
      'Forbidden',
      `${actor.name} may not ${action} ${project ? `in project ${project}` : 'the fleet'}`,
    );
}
