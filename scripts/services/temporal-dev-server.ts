import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { devServerSearchAttributeFlags } from '../../domain/names';
import { assertPortFree, ManagedProcess } from './processes';

/**
 * Starts `temporal server start-dev` with SQLite persistence, the Web UI and virtflow's
 * search attributes registered, and waits until its frontend accepts connections.
 */
export async function startTemporalDevServer(opts: {
  port: number;
  uiPort: number;
  dbFile: string;
  logDir: string;
  ownProcessGroup?: boolean;
}) {
  if (!fs.existsSync(installed.temporal)) {
    throw new Error(`the Temporal CLI is not built (${installed.temporal} missing): run scripts/bootstrap`);
  }
  await assertPortFree(opts.port, 'Temporal dev server', 'VIRTFLOW_TEMPORAL_PORT');
  await assertPortFree(opts.uiPort, 'Temporal Web UI', 'VIRTFLOW_UI_PORT');
  const proc = ManagedProcess.spawn(
    'Temporal dev server',
    installed.temporal,
    [
      'server',
      'start-dev',
      '--ip',
      '127.0.0.1',
      '--port',
      String(opts.port),
      '--ui-port',
      String(opts.uiPort),
      '--db-filename',
      opts.dbFile,
      '--log-level',
      'warn',
      ...devServerSearchAttributeFlags(),
    ],
    { logPath: path.join(opts.logDir, 'temporal.log'), ownProcessGroup: opts.ownProcessGroup },
  );
  await proc.waitForPort(opts.port, 60_000);
  await proc.waitForPort(opts.uiPort, 30_000);
  return { process: proc, address: `127.0.0.1:${opts.port}`, uiUrl: `http://localhost:${opts.uiPort}` };
}
