import fs from 'node:fs';
import path from 'node:path';
import { installed, loadConfig, type Config } from '../../domain/config';
import { hostAgentArgs, localFenceConfig, localHosts, spawnEntryPoint, Supervised } from './entry-points';
import { startFerretDb } from './ferretdb';
import { startPostgres, ensureDatabase, type Postgres } from './postgres';
import { findFreePort, type ManagedProcess } from './processes';
import { startTemporalServer } from './temporal-server';
import { startPrometheus } from './prometheus';
import { startTemporalUi } from './temporal-ui';

/** The controllers of the cluster stack: two workers on the same task queue. */
export const CLUSTER_CONTROLLERS = ['controller-1', 'controller-2'] as const;
export type ClusterController = (typeof CLUSTER_CONTROLLERS)[number];

export interface ClusterStackOptions {
  namespace?: string;
  /** Extra arguments for every host agent. */
  agentArgs?: string[];
  /** false: the services only, no controller or agent (a benchmark runs its own in-process). */
  workers?: boolean;
  /** Serve the Temporal Web UI (the UI server) against the cluster's frontend. */
  ui?: boolean;
  /** Fixed ports (`npm run stack:cluster`: the ones the CLI's defaults expect); free ones otherwise. */
  ports?: Partial<Record<'postgres' | 'temporal' | 'ferret' | 'ui' | 'prometheus', number>>;
  ownProcessGroup?: boolean;
}

/** FerretDB keeps the inventory in this PostgreSQL database (Temporal has its own two). */
const INVENTORY_DATABASE = 'virtflow_inventory';

/**
 * virtflow as a production deployment is shaped, on one machine: PostgreSQL, the Temporal
 * server on it (not the dev server), the inventory through FerretDB's PostgreSQL backend, two
 * controller workers and three host agents, each its own process, and Prometheus scraping
 * every one of them and the Temporal server. Agents are supervised (a
 * patch restarts them, as systemd would); controllers are not, so a killed one stays dead and
 * the other carries on alone until `restartController`.
 */
export class ClusterStack {
  private constructor(
    readonly dir: string,
    readonly config: Config,
    readonly env: NodeJS.ProcessEnv,
    private postgres: Postgres,
    private readonly temporal: ManagedProcess,
    readonly prometheus: Awaited<ReturnType<typeof startPrometheus>>,
    private readonly ferret: ManagedProcess,
    private readonly ui: ManagedProcess | undefined,
    private readonly controllers: Map<ClusterController, ManagedProcess>,
    private readonly agents: Supervised[],
    readonly ports: { postgres: number; temporal: number; ferret: number },
    /** Each worker process's metrics endpoint, by process name. */
    readonly metricsAt: Map<string, string>,
  ) {}

  static async start(dir: string, opts: ClusterStackOptions = {}): Promise<ClusterStack> {
    const started: { stop(): Promise<void> }[] = [];
    try {
      return await ClusterStack.startAll(dir, opts, started);
    } catch (err) {
      // A start that failed halfway leaves nothing running behind it.
      for (const p of started.reverse()) await p.stop().catch(() => undefined);
      throw err;
    }
  }

  private static async startAll(
    dir: string,
    opts: ClusterStackOptions,
    started: { stop(): Promise<void> }[],
  ): Promise<ClusterStack> {
    fs.mkdirSync(dir, { recursive: true });
    const logDir = path.join(dir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    const ports = {
      postgres: opts.ports?.postgres ?? (await findFreePort()),
      temporal: opts.ports?.temporal ?? (await findFreePort()),
      ferret: opts.ports?.ferret ?? (await findFreePort()),
    };
    const own = opts.ownProcessGroup;
    const pg = await startPostgres({
      port: ports.postgres,
      dataDir: path.join(dir, 'postgres'),
      logDir,
      ownProcessGroup: own,
    });
    started.push(pg.process);
    const namespace = opts.namespace ?? 'default';
    const temporal = await startTemporalServer({
      pg,
      dir: path.join(dir, 'temporal'),
      logDir,
      port: ports.temporal,
      namespace,
      ownProcessGroup: own,
    });
    started.push(temporal.process);
    const ferret = await ClusterStack.startFerret(dir, pg, ports.ferret, own);
    started.push(ferret);
    const ui = opts.ui
      ? await startTemporalUi({
          frontend: temporal.address,
          namespace,
          port: opts.ports?.ui ?? (await findFreePort()),
          dir: path.join(dir, 'temporal-ui'),
          logDir,
          ownProcessGroup: own,
        })
      : undefined;
    if (ui) started.push(ui.process);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...(ui ? { TEMPORAL_UI_URL: ui.url } : {}),
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: namespace,
      MONGODB_URI: `mongodb://127.0.0.1:${ports.ferret}/`,
      VIRTFLOW_DB: 'virtflow',
      VIRTFLOW_DATA_DIR: path.join(dir, 'data'),
      VIRTFLOW_FENCE_CONFIG: localFenceConfig(dir, {}),
      VIRTFLOW_LOG_LEVEL: process.env.VIRTFLOW_LOG_LEVEL ?? 'warn',
    };
    // Every worker process serves its metrics on a port of its own; Prometheus scrapes them all.
    const metricsAt = new Map<string, string>();
    for (const name of [...CLUSTER_CONTROLLERS, ...localHosts.map((h) => `agent-${h.hostId}`)])
      metricsAt.set(name, `127.0.0.1:${await findFreePort()}`);
    const envOf = (name: string) => processEnv(env, metricsAt, name);
    const workers = opts.workers !== false;
    const controllers = new Map(
      (workers ? CLUSTER_CONTROLLERS : []).map((name) => [
        name,
        ClusterStack.spawnController(name, logDir, envOf(name), own),
      ]),
    );
    started.push(...controllers.values());
    const agents = (workers ? localHosts : []).map(
      (host) =>
        new Supervised(() =>
          spawnEntryPoint(
            `agent-${host.hostId}`,
            'worker/host-agent.ts',
            hostAgentArgs(host, opts.agentArgs),
            {
              logDir,
              env: envOf(`agent-${host.hostId}`),
              ownProcessGroup: own,
            },
          ),
        ),
    );
    started.push(...agents);
    const prometheus = await startPrometheus({
      port: opts.ports?.prometheus ?? (await findFreePort()),
      dir: path.join(dir, 'prometheus'),
      logDir,
      jobs: {
        'virtflow-controller': CLUSTER_CONTROLLERS.map((c) => metricsAt.get(c)!),
        'virtflow-agent': localHosts.map((h) => metricsAt.get(`agent-${h.hostId}`)!),
        temporal: [temporal.metricsAddress],
      },
      ownProcessGroup: own,
    });
    return new ClusterStack(
      dir,
      loadConfig(env),
      env,
      pg,
      temporal.process,
      prometheus,
      ferret,
      ui?.process,
      controllers,
      agents,
      ports,
      metricsAt,
    );
  }

  private static async startFerret(dir: string, pg: Postgres, port: number, own?: boolean) {
    ensureDatabase(pg, INVENTORY_DATABASE);
    const ferret = await startFerretDb({
      port,
      dataDir: path.join(dir, 'ferretdb'),
      logDir: path.join(dir, 'logs'),
      postgresUrl: pg.url(INVENTORY_DATABASE),
      ownProcessGroup: own,
    });
    return ferret.process;
  }

  private static spawnController(name: string, logDir: string, env: NodeJS.ProcessEnv, own?: boolean) {
    return spawnEntryPoint(name, 'worker/controller.ts', [], { logDir, env, ownProcessGroup: own });
  }

  get logDir(): string {
    return path.join(this.dir, 'logs');
  }

  controller(name: ClusterController): ManagedProcess {
    return this.controllers.get(name)!;
  }

  /** SIGKILL a controller; it stays down until restartController. */
  async killController(name: ClusterController): Promise<void> {
    const proc = this.controllers.get(name)!;
    proc.child.kill('SIGKILL');
    await proc.waitForExit();
  }

  restartController(name: ClusterController): void {
    if (!this.controllers.get(name)!.running)
      this.controllers.set(
        name,
        ClusterStack.spawnController(name, this.logDir, processEnv(this.env, this.metricsAt, name)),
      );
  }

  /** Restarts PostgreSQL (a fast shutdown, then the same data and port): every service's connections drop. */
  async restartPostgres(): Promise<void> {
    // SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
    this.postgres.process.child.kill('SIGINT');
    await this.postgres.process.waitForExit();
    this.postgres = await startPostgres({
      port: this.ports.postgres,
      dataDir: path.join(this.dir, 'postgres'),
      logDir: this.logDir,
    });
  }

  async stop(): Promise<void> {
    await Promise.all([...this.controllers.values()].map((c) => c.stop()));
    await Promise.all(this.agents.map((a) => a.stop()));
    await this.prometheus.process.stop();
    await this.ui?.stop();
    await this.ferret.stop();
    await this.temporal.stop(15_000);
    await this.postgres.process.stop(15_000);
  }
}

/** A worker process's environment: the stack's, with its own metrics endpoint. */
function processEnv(env: NodeJS.ProcessEnv, metricsAt: Map<string, string>, name: string): NodeJS.ProcessEnv {
  return { ...env, VIRTFLOW_METRICS_ADDRESS: metricsAt.get(name) };
}

/** Whether this machine has what the cluster stack needs (`scripts/bootstrap --cluster`). */
export function clusterStackInstalled(): boolean {
  return [installed.temporalServer, installed.temporalSqlTool, installed.postgres.server].every((f) =>
    fs.existsSync(f),
  );
}
