import { InvalidArgumentError, type Command } from 'commander';
import { grantSchema, type Grant } from '../../domain/access';
import { parseInput } from '../../domain/errors';
import { createApiToken, listApiTokens, revokeApiToken, type ApiTokenView } from '../../inventory/api-tokens';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';
import { numberArg } from './args';

/** `--grant PROJECT=ROLE` (`*` is the fleet), repeatable. */
function grantArg(value: string, previous: Grant[] = []): Grant[] {
  const m = /^([^=]+)=([^=]+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not PROJECT=ROLE (e.g. web=operator, *=admin)`);
  return [...previous, parseInput(grantSchema, { project: m[1], role: m[2] }, 'grant')];
}

/**
 * API tokens: through the API by a fleet admin when logged in, or where the database is
 * reachable (the CLI's direct mode), which is how the first administrator's token comes to exist.
 */
export function registerTokenCommands(program: Command, ctx: CliContext): void {
  const token = program.command('token').description('API tokens: roles per project for the API and console');

  token
    .command('create <name>')
    .description('create a token; its secret is printed once and never stored')
    .requiredOption(
      '--grant <project=role>',
      'a role (viewer, operator, admin) in a project; * is the fleet',
      grantArg,
    )
    .option('--expires-in-days <n>', 'the token stops working after this many days', numberArg)
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions & { grant: Grant[]; expiresInDays?: number }) => {
      const request = { name, grants: o.grant, expiresInDays: o.expiresInDays };
      const created = ctx.api
        ? await ctx.api.request<{ token: string; view: ApiTokenView }>('POST', '/v1/tokens', request)
        : await createApiToken(await ctx.inventory(), request, ctx.actor.name);
      emit(o, created, (c) => {
        printFields({ id: c.view._id, name: c.view.name, expires: c.view.expiresAt ?? 'never' });
        console.log(`\ntoken (shown once): ${c.token}`);
      });
    });

  token
    .command('list')
    .description('every token, without its secret')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const tokens = ctx.api
        ? await ctx.api.request<ApiTokenView[]>('GET', '/v1/tokens')
        : await listApiTokens(await ctx.inventory());
      emit(o, tokens, (ts) =>
        printTable(
          ts.map((t) => ({
            id: t._id,
            name: t.name,
            grants: t.grants.map((g) => `${g.project}=${g.role}`).join(','),
            expires: t.expiresAt ?? 'never',
            revoked: t.revokedAt ?? '',
          })),
          ['id', 'name', 'grants', 'expires', 'revoked'],
        ),
      );
    });

  token
    .command('revoke <id>')
    .description('revoke a token: the API refuses it from the next request on')
    .option('--json', 'print JSON')
    .action(async (id: string, o: OutputOptions) => {
      const view = ctx.api
        ? await ctx.api.request<ApiTokenView>('DELETE', `/v1/tokens/${encodeURIComponent(id)}`)
        : await revokeApiToken(await ctx.inventory(), id);
      emit(o, view, (v) =>
        console.log(`token ${v._id} (${v.name}) revoked at ${v.revokedAt?.toISOString()}`),
      );
    });
}
