import fs from 'node:fs';
import type { Command } from 'commander';
import { ApiClient } from '../api-client';
import type { CliContext } from '../context';
import { forgetCredentials, saveCredentials } from '../credentials';
import { emit, printFields, type OutputOptions } from '../output';

/** Reads a token from a file, or from standard input with `-`, so it never sits in shell history. */
function readToken(file: string): string {
  return fs.readFileSync(file === '-' ? 0 : file, 'utf8').trim();
}

/** `virtflow login`/`logout`/`whoami`: the API and token the CLI goes through. */
export function registerLoginCommands(program: Command, ctx: CliContext): void {
  program
    .command('login <url>')
    .description("go through virtflow's API from now on, with a token (checked before it is stored)")
    .requiredOption('--token-file <file>', 'a file holding the token, or - for standard input')
    .option('--json', 'print JSON')
    .action(async (url: string, o: OutputOptions & { tokenFile: string }) => {
      const token = readToken(o.tokenFile);
      const who = await new ApiClient(url, token).request<{ actor: string }>('GET', '/v1/whoami');
      const file = saveCredentials({ url, token });
      emit(o, { url, actor: who.actor, credentials: file }, (r) =>
        console.log(`logged in to ${r.url} as ${r.actor} (token kept in ${r.credentials})`),
      );
    });

  program
    .command('logout')
    .description('forget the stored token: the CLI works directly again')
    .action(() => console.log(forgetCredentials() ? 'logged out' : 'not logged in'));

  program
    .command('whoami')
    .description('who the CLI acts as, and with which grants')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const api = ctx.api;
      const who = api
        ? await api.request<{ actor: string; grants: { project: string; role: string }[] }>(
            'GET',
            '/v1/whoami',
          )
        : { actor: ctx.actor.name, grants: ctx.actor.grants };
      emit(o, { ...who, via: api ? api.url : 'direct' }, (w) =>
        printFields({ actor: w.actor, via: w.via, grants: w.grants.map((g) => `${g.project}=${g.role}`) }),
      );
    });
}
