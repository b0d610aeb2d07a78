import fs from 'node:fs';
import path from 'node:path';
import { LabNetwork } from '../../scripts/services/lab-network';
import { Runtime, DefaultLogger, type WorkflowBundle } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../../domain/config';
import { localQemuHost } from '../../hypervisor/local-qemu-host';
import { connectClient } from '../../client/temporal';
import { openInventory, type Inventory } from '../../inventory/db';
import { createController, type ControllerOptions } from '../../worker/controller';
import { startSimAgent, type SimAgentOptions } from '../../worker/sim-agent';
import { bundleControllerWorkflows } from '../../worker/workflow-modules';
import {
  hostAgentArgs,
  localFenceConfig,
  localHosts,
  spawnEntryPoint,
  Supervised,
} from '../../scripts/services/entry-points';
import type { ManagedProcess } from '../../scripts/services/processes';
import { HISTORY_DIRS, recordHistories, recordingHistories } from './histories';
import { ensureTestNamespace } from './test-namespace';
import { stopWorker } from '../../worker/stop-worker';

let runtimeInstalled = false;

/** Keeps the SDK's own logging to warnings so test output stays readable. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
}

/**
 * The environment of one test file: its own database and data directory on the shared
 * Temporal server and FerretDB, so files never see each other's hosts or VMs.
 */
export function fileConfig(
  name: string,
  overrides: NodeJS.ProcessEnv = {},
): { config: Config; env: NodeJS.ProcessEnv } {
  const runDir = process.env.VIRTFLOW_TEST_RUN_DIR;
  if (!runDir) throw new Error('VIRTFLOW_TEST_RUN_DIR is unset: run the tests with `npm test`');
  const env = {
    ...process.env,
    VIRTFLOW_DB: `vf-${name}`,
    TEMPORAL_NAMESPACE: `vf-${name}`,
    VIRTFLOW_DATA_DIR: path.join(runDir, name),
    // The local stack's fences; a test that needs another fence rewrites this file.
    VIRTFLOW_FENCE_CONFIG: path.join(runDir, name, 'fence.json'),
    ...overrides,
  };
  if (!overrides.VIRTFLOW_FENCE_CONFIG) localFenceConfig(path.join(runDir, name), {});
  return { config: loadConfig(env), env };
}

/** The run's workflow bundle (test/global-setup.ts), or a fresh one outside a jest run. */
export async function bundleWorkflows(): Promise<WorkflowBundle> {
  quietRuntime();
  const codePath = process.env.VIRTFLOW_TEST_WORKFLOW_BUNDLE;
  return codePath ? { code: fs.readFileSync(codePath, 'utf8') } : bundleControllerWorkflows();
}

export interface HostAgentHandle {
  hostId: string;
  /** The agent's current process (a supervised agent gets a new one after each restart). */
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * The pieces a test file starts: a controller worker in this process (with the file's
 * workflow bundle) and host agents as real child processes, so a test can kill -9 one.
 */
export class TestStack {
  agents = new Map<string, HostAgentHandle>();
  private controllerRun?: Promise<void>;
  private controllerWorker?: Awaited<ReturnType<typeof createController>>['worker'];

  private constructor(
    readonly name: string,
    readonly config: Config,
    readonly env: NodeJS.ProcessEnv,
    readonly client: Client,
    readonly inventory: Inventory,
  ) {}

  /** `env` overrides the file's environment: its own database server, say. */
  static async create(name: string, env: NodeJS.ProcessEnv = {}): Promise<TestStack> {
    quietRuntime();
    const { config, env: fileEnv } = fileConfig(name, env);
    await ensureTestNamespace(config);
    const inventory = await openInventory(config);
    await inventory.db.dropDatabase();
    return new TestStack(name, config, fileEnv, await connectClient(config), inventory);
  }

  /** The local hosts' network namespaces and switch, once `startLab` made them. */
  lab?: LabNetwork;

  /** Gives the local hosts networks: agents started after this serve them in their namespaces. */
  async startLab(): Promise<LabNetwork> {
    this.lab = await LabNetwork.create(
      this.config.dataDir,
      localHosts.map((h) => h.hostId),
    );
    return this.lab;
  }

  /** The controller as its own process, for tests that kill it. */
  controllerProcess?: ManagedProcess;

  async startControllerProcess(): Promise<ManagedProcess> {
    this.controllerProcess = spawnEntryPoint(`${this.name}-controller`, 'worker/controller.ts', [], {
      logDir: process.env.VIRTFLOW_TEST_RUN_DIR!,
      env: { ...this.env, VIRTFLOW_LOG_LEVEL: 'warn' },
    });
    return this.controllerProcess;
  }

  /** The simulated agent serving every `sim-…` host, in this process. */
  simAgent?: Awaited<ReturnType<typeof startSimAgent>>;

  async startSimAgent(opts: SimAgentOptions = {}) {
    this.simAgent = await startSimAgent(this.config, opts);
    return this.simAgent;
  }

  async startController(bundle: WorkflowBundle, opts: Omit<ControllerOptions, 'workflowBundle'> = {}) {
    const controller = await createController(this.config, { ...opts, workflowBundle: bundle });
    this.controllerWorker = controller.worker;
    this.controllerRun = controller.run();
  }

  /**
   * Starts the agent of a local host and waits until it has registered. A supervised agent is
   * started again whenever it exits, as the local stack does (a patch restarts it).
   */
  async startAgent(
    hostId: string,
    extraArgs: string[] = [],
    extraEnv: NodeJS.ProcessEnv = {},
    opts: { supervised?: boolean } = {},
  ): Promise<HostAgentHandle> {
    const host = localHosts.find((h) => h.hostId === hostId);
    if (!host) throw new Error(`unknown local host ${hostId}`);
    const spawnAgent = () =>
      spawnEntryPoint(
        `${this.name}-agent-${hostId}`,
        'worker/host-agent.ts',
        hostAgentArgs(host, [...(this.lab?.agentArgs(hostId) ?? []), ...extraArgs]),
        {
          logDir: process.env.VIRTFLOW_TEST_RUN_DIR!,
          env: { ...this.env, VIRTFLOW_LOG_LEVEL: 'warn', ...extraEnv },
        },
      );
    let handle: HostAgentHandle;
    if (opts.supervised) {
      const supervisor = new Supervised(spawnAgent);
      handle = {
        hostId,
        get process() {
          return supervisor.process;
        },
        stop: () => supervisor.stop(),
      };
    } else {
      const single = spawnAgent();
      handle = { hostId, process: single, stop: () => single.stop() };
    }
    const proc = handle.process;
    this.agents.set(hostId, handle);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const doc = await this.inventory.hosts.findOne({ _id: hostId });
      if (doc && doc.agent.pid === proc.child.pid && doc.state === 'up') return handle;
      if (!proc.running) throw new Error(`agent ${hostId} exited: ${proc.logTail()}`);
      if (Date.now() > deadline)
        throw new Error(`agent ${hostId} did not register within 60 s: ${proc.logTail()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async startAgents(hostIds = localHosts.map((h) => h.hostId), extraArgs: string[] = []): Promise<void> {
    await Promise.all(hostIds.map((id) => this.startAgent(id, extraArgs)));
  }

  /** Stops everything this file started, its guests included, so later files run on idle cores. */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop()));
    for (const { hostId } of localHosts) {
      const qemu = localQemuHost(this.config.dataDir, hostId);
      for (const guest of qemu.list()) qemu.kill(guest.vmId);
    }
    await this.lab?.destroy();
    await this.simAgent?.stop();
    await this.controllerProcess?.stop();
    if (this.controllerWorker) stopWorker(this.controllerWorker);
    await this.controllerRun;
    if (recordingHistories())
      await recordHistories(this.client, this.config.temporal.address, HISTORY_DIRS.real, 2);
    await this.client.connection.close();
    await this.inventory.close();
  }
}
