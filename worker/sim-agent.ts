import { Worker } from '@temporalio/worker';
import { withOperatorErrors } from '../activities/operator-errors';
import { createSimHostActivities } from '../activities/host/sim-host-activities';
import { connectWorkerConnection } from '../client/temporal';
import { loadConfig, type Config } from '../domain/config';
import { logger } from '../domain/logger';
import { SIM_TASK_QUEUE } from '../domain/names';
import { SimFleet } from '../hypervisor/sim/sim-fleet';
import type { TimingModel } from '../hypervisor/sim/timing-model';
import { openInventory } from '../inventory/db';
import { loadSimHostSeeds, recordSimRestart, recordSimSpan } from '../inventory/sim-fleet';
import { stopWorker } from './stop-worker';

export interface SimAgentOptions {
  /** `host/sim` unless this agent serves a dry-run's twin (see hostTaskQueue). */
  taskQueue?: string;
  /** Real quiet time before the virtual clock moves (see VirtualClock). */
  settleMs?: number;
  model?: TimingModel;
}

/**
 * The simulated host agent: one worker on `host/sim` serving every simulated host in the
 * inventory, with the QEMU agent's activity interface over an in-memory fleet and a virtual
 * clock. For fleet-scale tests, benchmarks, `virtflow sim up` and rollout dry-runs.
 */
export async function startSimAgent(config: Config, opts: SimAgentOptions = {}) {
  const inv = await openInventory(config);
  const connection = await connectWorkerConnection(config);
  const fleet = new SimFleet(
    () => loadSimHostSeeds(inv, opts.taskQueue ?? SIM_TASK_QUEUE),
    opts.model,
    opts.settleMs,
  );
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? SIM_TASK_QUEUE,
    // Hundreds of hosts share this one worker: let it hold many calls at once.
    maxConcurrentActivityTaskExecutions: 2000,
    activities: fleet.clock.holding(
      withOperatorErrors(
        createSimHostActivities({
          fleet,
          recordRestart: (hostId, agent) => recordSimRestart(inv, hostId, agent),
          recordSpan: (span) => recordSimSpan(inv, span),
        }),
      ),
    ),
  });
  const running = worker.run().finally(async () => {
    fleet.clock.stop();
    await connection.close();
    await inv.close();
  });
  return {
    fleet,
    worker,
    running,
    async stop(): Promise<void> {
      stopWorker(worker);
      await running;
    },
  };
}

if (require.main === module) {
  void (async () => {
    const agent = await startSimAgent(loadConfig());
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stopWorker(agent.worker));
    logger.info({ taskQueue: SIM_TASK_QUEUE }, 'simulated host agent started');
    await agent.running;
  })().catch((err: unknown) => {
    logger.fatal({ err }, 'simulated host agent failed');
    process.exit(1);
  });
}
