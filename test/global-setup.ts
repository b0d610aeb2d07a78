import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { installed } from '../domain/config';
import { allSearchAttributes } from '../domain/names';
import { startFerretDb } from '../scripts/services/ferretdb';
import { findFreePort } from '../scripts/services/processes';
import { bundleControllerWorkflows } from '../worker/workflow-modules';

/**
 * One Temporal dev server (the bootstrap's binary, through @temporalio/testing) and one
 * FerretDB serve the whole run. Test processes find them through the environment, which
 * jest workers inherit from this process.
 */
export default async function globalSetup(): Promise<void> {
  // A short base path: QMP unix socket paths must stay under 108 bytes.
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-'));
  const temporal = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: installed.temporal },
      ip: '127.0.0.1',
      searchAttributes: allSearchAttributes,
      log: { format: 'pretty', level: 'error' },
    },
  });
  // Every file's controller worker runs the same workflow code: bundle it once for the run
  // (a bundle costs seconds of CPU, and a run has some twenty files that need one).
  const bundlePath = path.join(runDir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, (await bundleControllerWorkflows()).code);
  const ferret = await startFerretDb({
    port: await findFreePort(),
    dataDir: path.join(runDir, 'ferretdb'),
    logDir: runDir,
  });
  Object.assign(process.env, {
    TEMPORAL_ADDRESS: temporal.address,
    MONGODB_URI: ferret.uri,
    VIRTFLOW_DATA_DIR: path.join(runDir, 'data'),
    VIRTFLOW_TEST_RUN_DIR: runDir,
    VIRTFLOW_TEST_WORKFLOW_BUNDLE: bundlePath,
    VIRTFLOW_LOG_LEVEL: process.env.VIRTFLOW_LOG_LEVEL ?? 'warn',
  });
  (globalThis as Record<string, unknown>).__virtflowTestServices = { temporal, ferret, runDir };
}
