import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient } from '../client/temporal';
import { loadConfig, type Config } from '../domain/config';
import { openInventory, type Inventory } from '../inventory/db';
import {
  hostAgentArgs,
  localFenceConfig,
  localHosts,
  spawnEntryPoint,
} from '../scripts/services/entry-points';
import { startFerretDb } from '../scripts/services/ferretdb';
import type { LabNetwork } from '../scripts/services/lab-network';
import { findFreePort, type ManagedProcess } from '../scripts/services/processes';
import { startTemporalDevServer } from '../scripts/services/temporal-dev-server';

export interface BenchStack {
  config: Config;
  client: Client;
  inventory: Inventory;
  /** Each local host's current agent process. */
  agents: Map<string, ManagedProcess>;
  /** Starts a host's agent again (after a kill or a fence) and waits until it has registered. */
  restartAgent(hostId: string): Promise<void>;
  stop(): Promise<void>;
}

/** A private virtflow stack for one benchmark run: its own ports, database files and data directory. */
export async function startBenchStack(
  dir: string,
  hostCount: number,
  /** `lab`: the hosts' network namespaces (scripts/services/lab-network.ts), for networked guests. */
  opts: { controller?: boolean; agentArgs?: string[]; lab?: LabNetwork } = {},
): Promise<BenchStack> {
  const children: ManagedProcess[] = [];
  const temporal = await startTemporalDevServer({
    port: await findFreePort(),
    uiPort: await findFreePort(),
    dbFile: path.join(dir, 'temporal.db'),
    logDir: dir,
  });
  const ferret = await startFerretDb({
    port: await findFreePort(),
    dataDir: path.join(dir, 'ferretdb'),
    logDir: dir,
  });
  const env = {
    ...process.env,
    TEMPORAL_ADDRESS: temporal.address,
    MONGODB_URI: ferret.uri,
    VIRTFLOW_DATA_DIR: path.join(dir, 'data'),
    VIRTFLOW_FENCE_CONFIG: localFenceConfig(dir),
    VIRTFLOW_LOG_LEVEL: 'warn',
  };
  const config = loadConfig(env);
  if (opts.controller !== false)
    children.push(spawnEntryPoint('bench-controller', 'worker/controller.ts', [], { logDir: dir, env }));
  const agents = new Map<string, ManagedProcess>();
  const spawnAgent = (host: (typeof localHosts)[number]) => {
    const agent = spawnEntryPoint(
      `bench-${host.hostId}`,
      'worker/host-agent.ts',
      hostAgentArgs(host, [...(opts.lab?.agentArgs(host.hostId) ?? []), ...(opts.agentArgs ?? [])]),
      { logDir: dir, env },
    );
    agents.set(host.hostId, agent);
    children.push(agent);
    return agent;
  };
  for (const host of localHosts.slice(0, hostCount)) spawnAgent(host);
  const inventory = await openInventory(config);
  for (let i = 0; (await inventory.hosts.countDocuments({ state: 'up' })) < hostCount; i++) {
    if (i > 300) throw new Error('host agents did not register');
    await new Promise((r) => setTimeout(r, 200));
  }
  const client = await connectClient(config);
  return {
    config,
    client,
    inventory,
    agents,
    async restartAgent(hostId: string) {
      const agent = spawnAgent(localHosts.find((h) => h.hostId === hostId)!);
      for (let i = 0; ; i++) {
        const doc = await inventory.hosts.findOne({ _id: hostId });
        if (doc?.state === 'up' && doc.agent.pid === agent.child.pid) return;
        if (i > 300) throw new Error(`agent ${hostId} did not register again`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async stop() {
      await client.connection.close();
      await inventory.close();
      for (const c of children) await c.stop();
      await ferret.process.stop();
      await temporal.process.stop();
    },
  };
}
