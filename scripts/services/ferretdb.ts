import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { assertPortFree, ManagedProcess } from './processes';

/**
 * Starts the embedded FerretDB and waits until it accepts connections: SQLite files in `dataDir`,
 * or with `postgresUrl` its PostgreSQL backend (the cluster stack).
 */
export async function startFerretDb(opts: {
  port: number;
  dataDir: string;
  logDir: string;
  postgresUrl?: string;
  ownProcessGroup?: boolean;
}) {
  if (!fs.existsSync(installed.ferretdb)) {
    throw new Error(`FerretDB is not built (${installed.ferretdb} missing): run scripts/bootstrap`);
  }
  await assertPortFree(opts.port, 'FerretDB', 'VIRTFLOW_FERRETDB_PORT');
  fs.mkdirSync(opts.dataDir, { recursive: true });
  const proc = ManagedProcess.spawn(
    'FerretDB',
    installed.ferretdb,
    [
      '--listen',
      `127.0.0.1:${opts.port}`,
      '--dir',
      opts.dataDir,
      ...(opts.postgresUrl ? ['--postgresql-url', opts.postgresUrl] : []),
    ],
    { logPath: path.join(opts.logDir, 'ferretdb.log'), ownProcessGroup: opts.ownProcessGroup },
  );
  await proc.waitForPort(opts.port, 30_000);
  return { process: proc, uri: `mongodb://127.0.0.1:${opts.port}/` };
}
