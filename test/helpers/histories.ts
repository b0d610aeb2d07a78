import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { installed } from '../../domain/config';

/**
 * Committed workflow histories, replayed by test/workflows/replay.test.ts against the current
 * workflow code: a change to a workflow's commands that would break runs in flight fails there
 * unless it is versioned with `patched()`. Two corpora, each recorded when its tier runs with
 * VIRTFLOW_RECORD_HISTORIES=1 (`npm run record:histories` records the real one). Record again
 * only to add runs of new workflows or branches: histories from older code are what prove that
 * runs begun under it still replay (docs/workflow-changes.md).
 */
export const HISTORY_DIRS = {
  /** From the mocked-activity tests: every branch (rollbacks, compensation, halts). */
  mocked: path.join(__dirname, '..', 'workflows', 'histories'),
  /** From the real-QEMU tests: the workflows as real runs drive them, every type those start. */
  real: path.join(__dirname, '..', 'histories'),
};

/** Whether this test run records the histories of its namespace when it ends. */
export const recordingHistories = () => process.env.VIRTFLOW_RECORD_HISTORIES === '1';

/** A history larger than this is left out: the corpus must stay small enough to commit. */
const MAX_BYTES = 256 * 1024;

/**
 * Writes the history of runs in the client's namespace into `dir`, a sample of at most
 * `perType` runs of each workflow type (forty skipped patchHost runs of one rollout replay alike).
 */
export async function recordHistories(
  client: Client,
  address: string,
  dir: string,
  perType: number,
): Promise<void> {
  fs.mkdirSync(dir, { recursive: true });
  const runs = [];
  for await (const run of client.workflow.list()) runs.push(run);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  const seen = new Map<string, number>();
  const ofType = new Map<string, number>();
  for (const run of runs) {
    const n = (seen.get(run.workflowId) ?? 0) + 1;
    seen.set(run.workflowId, n);
    if ((ofType.get(run.type) ?? 0) >= perType) continue;
    // The CLI writes the proto3 JSON that `historyFromJSON` reads (the SDK's own serializer trips
    // over jest's module registry, which loads protobufjs twice).
    const json = execFileSync(installed.temporal, [
      'workflow',
      'show',
      ...['--address', address, '--namespace', client.options.namespace],
      ...['--workflow-id', run.workflowId, '--run-id', run.runId, '--output', 'json'],
    ]);
    if (json.length > MAX_BYTES) continue;
    ofType.set(run.type, (ofType.get(run.type) ?? 0) + 1);
    const name = `${client.options.namespace}--${run.workflowId.replace(/[^a-z0-9-]/gi, '_')}--${n}.json`;
    fs.writeFileSync(path.join(dir, name), json);
  }
}
