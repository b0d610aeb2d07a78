import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { runSinks } from '../../worker/workflow-modules';
import { HISTORY_DIRS } from '../helpers/histories';
import { bundleWorkflows } from '../helpers/test-stack';

/**
 * Every committed history replays against the current workflow code without a nondeterminism
 * error: a change to a workflow's commands that would break runs already in flight fails here,
 * unless it is guarded by `patched()` (docs/workflow-changes.md). Two corpora: the mocked-activity
 * tests' (every branch) and the real-QEMU tests' (every workflow type they start). After a
 * deliberate, versioned change: `npm run record:histories`.
 */
describe('committed workflow histories replay against the current code', () => {
  const files = Object.values(HISTORY_DIRS).flatMap((dir) =>
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => path.join(dir, f)),
  );
  const typeOf = (file: string): string =>
    JSON.parse(fs.readFileSync(file, 'utf8')).events[0].workflowExecutionStartedEventAttributes.workflowType
      .name;

  test('there are histories of the long-lived workflows, from mocked and from real runs', () => {
    const types = (dir: string) => new Set(files.filter((f) => f.startsWith(dir)).map(typeOf));
    const mocked = types(HISTORY_DIRS.mocked);
    for (const t of ['liveMigration', 'createVm', 'rollingPatch', 'patchHost', 'haRestart', 'backupVm'])
      expect(mocked).toContain(t);
    const real = types(HISTORY_DIRS.real);
    for (const t of [
      'liveMigration',
      'createVm',
      'restoreVm',
      'backupVm',
      'verifyBackup',
      'resizeDisk',
      'screenshotGuest',
      'enterMaintenance',
      'reconcileFleet',
    ])
      expect(real).toContain(t);
  });

  test('each replays cleanly', async () => {
    const workflowBundle = await bundleWorkflows();
    const histories = files.map((f) => ({
      workflowId: path.relative(path.join(__dirname, '..'), f),
      history: historyFromJSON(JSON.parse(fs.readFileSync(f, 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle, sinks: runSinks() }, histories))
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    expect(failures).toEqual([]);
    expect(histories.length).toBeGreaterThan(20);
  });
});
