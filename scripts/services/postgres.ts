import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { assertPortFree, ManagedProcess } from './processes';

/**
 * A private PostgreSQL cluster for the cluster stack (Temporal's persistence and visibility,
 * and FerretDB's PostgreSQL backend): Debian's server binaries, a data directory of the stack's
 * own made by `initdb`, the server on loopback only. No system service is touched.
 *
 * PostgreSQL refuses to run as root: run as root, the cluster belongs to the `postgres` user
 * Debian's package creates, and the data directory's parents must let that user through.
 */
export interface Postgres {
  process: ManagedProcess;
  port: number;
  /** A URL for `database` as the cluster's superuser (trust authentication, loopback only). */
  url(database: string): string;
}

export const POSTGRES_USER = 'virtflow';

/** Who runs the server: this process's user, or `postgres` when this process is root. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error(
      "PostgreSQL cannot run as root and there is no `postgres` user: install Debian's postgresql package (scripts/bootstrap --cluster)",
    );
  }
}

/** Makes the data directory with `initdb` if it has none yet. */
function initCluster(dataDir: string, logDir: string, user: ReturnType<typeof serverUser>): void {
  if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return;
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (user) fs.chownSync(dataDir, user.uid, user.gid);
  execFileSync(
    installed.postgres.initdb,
    ['-D', dataDir, '-U', POSTGRES_USER, '--auth=trust', '-E', 'UTF8', '--no-locale'],
    {
      stdio: ['ignore', fs.openSync(path.join(logDir, 'initdb.log'), 'a'), 'pipe'],
      uid: user?.uid,
      gid: user?.gid,
    },
  );
}

/** Starts (initialising first if need be) a private PostgreSQL on 127.0.0.1:`port`. */
export async function startPostgres(opts: {
  port: number;
  dataDir: string;
  logDir: string;
  ownProcessGroup?: boolean;
}): Promise<Postgres> {
  if (!fs.existsSync(installed.postgres.server)) {
    throw new Error(
      `PostgreSQL is not installed (${installed.postgres.server} missing): run scripts/bootstrap --cluster`,
    );
  }
  await assertPortFree(opts.port, 'PostgreSQL', 'the cluster stack port');
  const user = serverUser();
  initCluster(opts.dataDir, opts.logDir, user);
  // The unix socket goes in the data directory: the default, /var/run/postgresql, is the system's.
  const proc = ManagedProcess.spawn(
    'PostgreSQL',
    installed.postgres.server,
    ['-D', opts.dataDir, '-p', String(opts.port), '-k', opts.dataDir, '-c', 'listen_addresses=127.0.0.1'],
    { logPath: path.join(opts.logDir, 'postgres.log'), ownProcessGroup: opts.ownProcessGroup, user },
  );
  await proc.waitForPort(opts.port, 30_000);
  return {
    process: proc,
    port: opts.port,
    url: (database) => `postgres://${POSTGRES_USER}@127.0.0.1:${opts.port}/${database}`,
  };
}

/** Creates `database` unless it exists (psql over TCP as the superuser). */
export function ensureDatabase(pg: Postgres, database: string): void {
  const psql = (sql: string) =>
    execFileSync(installed.postgres.psql, [pg.url('postgres'), '-tAc', sql], { encoding: 'utf8' }).trim();
  if (psql(`SELECT 1 FROM pg_database WHERE datname = '${database}'`) !== '1')
    psql(`CREATE DATABASE "${database}"`);
}
