import {
  createApiToken,
  createTokenRequestSchema,
  listApiTokens,
  revokeApiToken,
} from '../inventory/api-tokens';
import type { CreateTokenRequest } from '../inventory/api-tokens';
import { authorize } from './auth';
import { route, type ApiDeps, type ApiRoute } from './route';

/** Who the caller is, and the tokens an admin of the fleet hands out and revokes. */
export function tokenRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/whoami',
      summary: "The caller's name, token and grants (the console's login checks its token here)",
      status: 200,
      async handle({ actor }) {
        return { actor: actor.name, tokenId: actor.tokenId, grants: actor.grants };
      },
    }),
    route({
      method: 'GET',
      url: '/v1/tokens',
      summary: 'Every token, without its secret (fleet admin)',
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'administer');
        return listApiTokens(deps.inv);
      },
    }),
    route<CreateTokenRequest>({
      method: 'POST',
      url: '/v1/tokens',
      summary: 'Create a token; its secret is in this answer only (fleet admin)',
      body: createTokenRequestSchema,
      status: 201,
      async handle({ actor, body }) {
        authorize(actor, 'administer');
        return createApiToken(deps.inv, body, actor.name);
      },
    }),
    route({
      method: 'DELETE',
      url: '/v1/tokens/:tokenId',
      summary: 'Revoke a token: it fails from the next request on (fleet admin)',
      status: 200,
      async handle({ actor, params }) {
        authorize(actor, 'administer');
        return revokeApiToken(deps.inv, params.tokenId);
      },
    }),
  ];
}
