import fs from 'node:fs';
import { CLI_DOCS, cliReference } from '../../scripts/cli-docs';

/** docs/cli.md is the CLI's own help: a command added or changed without regenerating it fails here. */
test('docs/cli.md matches the CLI help (npm run docs:cli)', () => {
  expect(fs.readFileSync(CLI_DOCS, 'utf8')).toBe(cliReference());
});
