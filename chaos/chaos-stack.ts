import path from 'node:path';
import { loadConfig, type Config } from '../domain/config';
import { startFerretDb } from '../scripts/services/ferretdb';
import {
  hostAgentArgs,
  localFenceConfig,
  localHosts,
  spawnEntryPoint,
  Supervised,
} from '../scripts/services/entry-points';
import { findFreePort, type ManagedProcess } from '../scripts/services/processes';
import { startTemporalDevServer } from '../scripts/services/temporal-dev-server';

export const killTargets = [
  'controller',
  'agent:host-a',
  'agent:host-b',
  'agent:host-c',
  'temporal',
  'ferretdb',
] as const;
export type KillTarget = (typeof killTargets)[number];

/** How often the run's agents heartbeat: a host is lost after three missed. */
export const FACTS_INTERVAL_SEC = 2;

/**
 * The local stack a chaos run owns: its own Temporal dev server and FerretDB (on free ports,
 * with their data in the run directory) so it can kill them, a supervised controller, and
 * three supervised host agents. Supervised processes come back on their own after a kill,
 * as systemd would bring them back; the two servers are started again by `restart`.
 */
export class ChaosStack {
  private constructor(
    readonly runDir: string,
    readonly config: Config,
    readonly env: NodeJS.ProcessEnv,
    private temporal: ManagedProcess,
    private ferret: ManagedProcess,
    private readonly ports: { temporal: number; ui: number; ferret: number },
    private readonly workers: Map<KillTarget, Supervised>,
  ) {}

  static async start(runDir: string): Promise<ChaosStack> {
    const ports = { temporal: await findFreePort(), ui: await findFreePort(), ferret: await findFreePort() };
    const temporal = await ChaosStack.startTemporal(runDir, ports);
    const ferret = await ChaosStack.startFerret(runDir, ports);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
      TEMPORAL_UI_URL: `http://localhost:${ports.ui}`,
      MONGODB_URI: `mongodb://127.0.0.1:${ports.ferret}/`,
      VIRTFLOW_DB: 'virtflow-chaos',
      VIRTFLOW_DATA_DIR: path.join(runDir, 'data'),
      VIRTFLOW_FENCE_CONFIG: localFenceConfig(runDir, {}),
      VIRTFLOW_LOG_LEVEL: 'warn',
    };
    const workers = new Map<KillTarget, Supervised>();
    workers.set(
      'controller',
      new Supervised(() =>
        spawnEntryPoint('controller', 'worker/controller.ts', [], { logDir: runDir, env }),
      ),
    );
    for (const host of localHosts) {
      workers.set(
        `agent:${host.hostId}` as KillTarget,
        new Supervised(() =>
          spawnEntryPoint(
            `agent-${host.hostId}`,
            'worker/host-agent.ts',
            hostAgentArgs(host, ['--facts-interval', String(FACTS_INTERVAL_SEC), '--memory', '2048']),
            { logDir: runDir, env },
          ),
        ),
      );
    }
    return new ChaosStack(runDir, loadConfig(env), env, temporal.process, ferret.process, ports, workers);
  }

  private static startTemporal(runDir: string, ports: { temporal: number; ui: number }) {
    return startTemporalDevServer({
      port: ports.temporal,
      uiPort: ports.ui,
      dbFile: path.join(runDir, 'temporal.db'),
      logDir: runDir,
    });
  }

  private static startFerret(runDir: string, ports: { ferret: number }) {
    return startFerretDb({ port: ports.ferret, dataDir: path.join(runDir, 'ferretdb'), logDir: runDir });
  }

  /** SIGKILL, no warning: what a crash, an OOM kill or a pulled plug does. */
  async kill(target: KillTarget): Promise<void> {
    const proc =
      target === 'temporal'
        ? this.temporal
        : target === 'ferretdb'
          ? this.ferret
          : this.workers.get(target)!.process;
    proc.child.kill('SIGKILL');
    await proc.waitForExit();
  }

  /** SIGTERM to a supervised worker: a clean stop (an agent marks its host down), then its supervisor restarts it. */
  async stopCleanly(target: KillTarget): Promise<void> {
    const proc = this.workers.get(target)!.process;
    proc.child.kill('SIGTERM');
    await proc.waitForExit();
  }

  /** Starts a killed server again on its port and data; supervised workers restart themselves. */
  async restart(target: KillTarget): Promise<void> {
    if (target === 'temporal' && !this.temporal.running)
      this.temporal = (await ChaosStack.startTemporal(this.runDir, this.ports)).process;
    if (target === 'ferretdb' && !this.ferret.running)
      this.ferret = (await ChaosStack.startFerret(this.runDir, this.ports)).process;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    await this.ferret.stop();
    await this.temporal.stop();
  }
}
