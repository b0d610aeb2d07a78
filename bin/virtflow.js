#!/usr/bin/env node
// The `virtflow` command: runs the TypeScript CLI through tsx, so no build step is needed.
require('tsx/cjs');
void require('../client/cli.ts').main();
