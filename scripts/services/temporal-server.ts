import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { SearchAttributeType } from '@temporalio/common';
import { msToTs } from '@temporalio/common/lib/time';
import { installed } from '../../domain/config';
import { allSearchAttributes } from '../../domain/names';
import { findFreeLowPort, findFreePort, ManagedProcess } from './processes';
import { ensureDatabase, POSTGRES_USER, type Postgres } from './postgres';

/**
 * The production-shaped Temporal: the server itself (not the CLI's dev server), its four
 * services in one process, persistence and visibility on PostgreSQL. Built from the module proxy
 * by `scripts/bootstrap --cluster`; its schema is set up with the server's own SQL tool.
 */
export interface TemporalServer {
  process: ManagedProcess;
  /** The frontend's gRPC address. */
  address: string;
  /** The server's own Prometheus metrics (scraped by the cluster stack's Prometheus). */
  metricsAddress: string;
}

const DATABASES = { temporal: 'temporal', visibility: 'temporal_visibility' } as const;

/** Creates both databases and brings their schemas to the server's version (idempotent). */
function setUpSchema(pg: Postgres): void {
  for (const [folder, db] of Object.entries(DATABASES)) {
    ensureDatabase(pg, db);
    const tool = (...args: string[]) =>
      execFileSync(
        installed.temporalSqlTool,
        [
          '--plugin',
          'postgres12',
          '--ep',
          '127.0.0.1',
          '-p',
          String(pg.port),
          '-u',
          POSTGRES_USER,
          '--db',
          db,
          ...args,
        ],
        { stdio: 'pipe' },
      );
    // setup-schema -v 0.0 records the version table only (a no-op once there); update-schema
    // then applies every versioned step the database lacks.
    tool('setup-schema', '-v', '0.0');
    tool('update-schema', '-d', path.join(installed.temporalSchema, folder, 'versioned'));
  }
}

/** The server's configuration (JSON is YAML): every port its own, loopback only. */
async function writeConfig(
  dir: string,
  pg: Postgres,
  frontendPort: number,
  metricsPort: number,
): Promise<void> {
  const store = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `127.0.0.1:${pg.port}`,
      connectProtocol: 'tcp',
      user: POSTGRES_USER,
      password: '',
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const service = async (grpcPort: number) => ({
    rpc: { grpcPort, membershipPort: await findFreeLowPort(), bindOnLocalHost: true },
  });
  fs.mkdirSync(path.join(dir, 'config'), { recursive: true });
  const dynamicConfig = path.join(dir, 'dynamicconfig.yaml');
  // Short waits before a poll ends: a few seconds of a worker's shutdown, not the default minute.
  fs.writeFileSync(dynamicConfig, 'matching.longPollExpirationInterval:\n  - value: 20s\n');
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: 4,
      datastores: { default: store(DATABASES.temporal, 20), visibility: store(DATABASES.visibility, 4) },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: {
        prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${metricsPort}` },
      },
    },
    services: {
      frontend: { rpc: { ...(await service(frontendPort)).rpc, httpPort: await findFreePort() } },
      history: await service(await findFreePort()),
      matching: await service(await findFreePort()),
      worker: await service(await findFreePort()),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${frontendPort}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    // The server reads this path from its working directory, not from --root: always absolute.
    dynamicConfigClient: { filepath: dynamicConfig, pollInterval: '10s' },
  };
  fs.writeFileSync(path.join(dir, 'config', 'cluster.yaml'), JSON.stringify(config, null, 2));
}

/** Registers `namespace` and virtflow's search attributes on it, unless already there. */
async function prepareNamespace(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const svc = connection.workflowService;
    try {
      await svc.registerNamespace({
        namespace,
        workflowExecutionRetentionPeriod: msToTs('7 days'),
      });
    } catch (err) {
      if (!/already exists/i.test((err as Error).message)) throw err;
    }
    const type = {
      [SearchAttributeType.KEYWORD]: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
      [SearchAttributeType.KEYWORD_LIST]:
        temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    } as Record<string, temporal.api.enums.v1.IndexedValueType>;
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = allSearchAttributes.filter((k) => !(k.name in (existing.customAttributes ?? {})));
    if (missing.length)
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(missing.map((k) => [k.name, type[k.type]])),
      });
  } finally {
    await connection.close();
  }
}

/** Sets up the schema, starts the server and waits until `namespace` answers. */
export async function startTemporalServer(opts: {
  pg: Postgres;
  dir: string;
  logDir: string;
  port: number;
  namespace: string;
  ownProcessGroup?: boolean;
}): Promise<TemporalServer> {
  for (const f of [installed.temporalServer, installed.temporalSqlTool])
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run scripts/bootstrap --cluster`);
  setUpSchema(opts.pg);
  const metricsPort = await findFreePort();
  await writeConfig(opts.dir, opts.pg, opts.port, metricsPort);
  const proc = ManagedProcess.spawn(
    'Temporal server',
    installed.temporalServer,
    ['--root', opts.dir, '--config', 'config', '--env', 'cluster', '--allow-no-auth', 'start'],
    {
      logPath: path.join(opts.logDir, 'temporal-server.log'),
      ownProcessGroup: opts.ownProcessGroup,
      cwd: opts.dir,
    },
  );
  await proc.waitForPort(opts.port, 60_000);
  const address = `127.0.0.1:${opts.port}`;
  // The frontend listens before the namespace cache and the other services are ready.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await prepareNamespace(address, opts.namespace);
      break;
    } catch (err) {
      if (Date.now() > deadline || !proc.running) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  return { process: proc, address, metricsAddress: `127.0.0.1:${metricsPort}` };
}
