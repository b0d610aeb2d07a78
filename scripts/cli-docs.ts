/**
 * Writes docs/cli.md from the CLI's own help: every command and subcommand, as `--help` prints
 * it. `npm run docs:cli` regenerates it; test/unit/cli-docs.test.ts fails when it is stale.
 * Written as is (prettier leaves it alone: .prettierignore), so the test compares bytes.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { buildCli } from '../client/cli';
import { CliContext } from '../client/context';
import { repoRoot } from '../domain/config';

export const CLI_DOCS = path.join(repoRoot, 'docs', 'cli.md');

function sections(cmd: Command, prefix: string[]): string[] {
  const name = [...prefix, cmd.name()];
  // Help as a terminal 100 columns wide would show it, the same on every machine.
  cmd.configureOutput({ getOutHelpWidth: () => 100, getErrHelpWidth: () => 100 });
  const own = [
    `${'#'.repeat(Math.min(name.length + 1, 4))} \`${name.join(' ')}\``,
    '',
    '```text',
    cmd.helpInformation().trimEnd(),
    '```',
    '',
  ];
  return [...own, ...cmd.commands.flatMap((c) => sections(c, name))];
}

/** The whole reference, as docs/cli.md holds it. */
export function cliReference(): string {
  const program = buildCli(new CliContext());
  return [
    '# The `virtflow` command',
    '',
    "Generated from the CLI's own help by `npm run docs:cli` (do not edit by hand). Every command",
    'takes `--json` where it prints something, and exits non-zero with a one-line reason on error.',
    '',
    ...sections(program, []),
  ].join('\n');
}

if (require.main === module) {
  fs.writeFileSync(CLI_DOCS, cliReference());
  console.log(`wrote ${path.relative(repoRoot, CLI_DOCS)}`);
}
