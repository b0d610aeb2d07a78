import type { FastifyRequest } from 'fastify';
import { allowed, FLEET, roleIn, type Action, type Actor } from '../domain/access';
import { TLSSocket } from 'node:tls';
import { authenticateToken, authenticateTokenId } from '../inventory/api-tokens';
import type { Inventory } from '../inventory/db';
import { HttpError } from './http-errors';

/**
 * Who is calling: the bearer token in the `Authorization` header (never a cookie, so a page on
 * another site cannot make a browser act for its user) or, without one, a client certificate
 * the server's client CA verified, which stands for the token whose id is its CN. Every refusal is the same 401 to the
 * caller, whatever the reason; the server's log keeps the reason.
 */
export async function authenticate(inv: Inventory, req: FastifyRequest): Promise<Actor> {
  const header = req.headers.authorization;
  const m = header ? /^Bearer ([^\s]+)$/.exec(header) : null;
  const certified = m ? undefined : verifiedClientCertificate(req);
  if (!m && !certified) throw new HttpError(401, 'Unauthenticated', 'a bearer token is required');
  const result = m ? await authenticateToken(inv, m[1]) : await authenticateTokenId(inv, certified!);
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

/**
 * Refuses (403) a caller with no fleet grant. What spans projects (backup policies, drift) is
 * read with one: a project's grant would show it other projects' VMs.
 */
export function authorizeFleetRead(actor: Actor, what: string): void {
  if (!roleIn(actor, FLEET))
    throw new HttpError(403, 'Forbidden', `${actor.name} may not read the fleet's ${what}`);
}

/**
 * The subject CN of a client certificate the server's client CA verified (mTLS), if the
 * request came with one: the id of the token it stands for. An unverified one is ignored.
 */
function verifiedClientCertificate(req: FastifyRequest): string | undefined {
  const socket = req.raw.socket;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return undefined;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === 'string' ? cn : undefined;
}
