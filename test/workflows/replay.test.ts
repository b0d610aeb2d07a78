import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { runSinks } from '../../worker/workflow-modules';
import { HISTORIES_DIR } from '../helpers/mocked-activities';
import { bundleWorkflows } from '../helpers/test-stack';

/**
 * Every committed history (recorded from the mocked-activity tests of this tier) replays against
 * the current workflow code without a nondeterminism error: a change to a workflow's commands that
 * would break runs already in flight fails here, unless it is guarded by `patched()`. After a
 * deliberate, versioned change, record them again: VIRTFLOW_RECORD_HISTORIES=1 with this tier.
 */
describe('committed workflow histories replay against the current code', () => {
  const files = fs.readdirSync(HISTORIES_DIR).filter((f) => f.endsWith('.json'));

  test('there are histories of every workflow the mocked tests run', () => {
    const types = new Set(
      files.map(
        (f) =>
          JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, f), 'utf8')).events[0]
            .workflowExecutionStartedEventAttributes.workflowType.name,
      ),
    );
    for (const t of [
      'liveMigration',
      'createVm',
      'rollingPatch',
      'patchHost',
      'haRestart',
      'haRestartVm',
      'backupVm',
      'enterMaintenance',
      'stopVm',
    ])
      expect(types).toContain(t);
  });

  test('each replays cleanly', async () => {
    const workflowBundle = await bundleWorkflows();
    const histories = files.map((f) => ({
      workflowId: f,
      history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(HISTORIES_DIR, f), 'utf8'))),
    }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories({ workflowBundle, sinks: runSinks() }, histories))
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    expect(failures).toEqual([]);
    expect(histories.length).toBeGreaterThan(20);
  });
});
