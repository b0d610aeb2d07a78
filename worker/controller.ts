import { actorActivityInterceptors } from './actor-context';
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import { createControllerActivities } from '../activities/controller/controller-activities';
import type { Client } from '@temporalio/client';
import { connectClient, connectWorkerConnection } from '../client/temporal';
import { loadConfig, type Config } from '../domain/config';
import { logger } from '../domain/logger';
import { CONTROLLER_TASK_QUEUE } from '../domain/names';
import type { VirtualClock } from '../hypervisor/sim/virtual-clock';
import { openInventoryWhenReady } from '../inventory/db';
import { runSinks, workflowInterceptorModules } from './workflow-modules';
import { stopWorker } from './stop-worker';
import { startFleetMetrics } from './fleet-metrics';
import { serveMetrics } from './metrics-endpoint';
import { ensureMetricsRetentionSchedule } from './metrics-retention-schedule';

/**
 * Builds the controller worker: every workflow plus the activities that touch only MongoDB.
 * Any number of replicas may run. Tests pass a pre-built bundle so workflow code is bundled
 * once per file, not once per worker.
 */
export interface ControllerOptions {
  workflowBundle?: WorkflowBundle;
  /** Another queue: a dry-run's controller serves only its own workflows. */
  taskQueue?: string;
  /** A simulated fleet's clock must not move while an inventory step runs (see VirtualClock). */
  simulationClock?: VirtualClock;
}

export async function createController(config: Config, opts: ControllerOptions = {}) {
  const inv = await openInventoryWhenReady(config, (err) =>
    logger.warn({ err: err.message }, 'the inventory is not ready yet; retrying'),
  );
  const connection = await connectWorkerConnection(config);
  // Activities that manage Schedules (pausing a failing backup policy) need a client; opened on first use.
  let client: Promise<Client> | undefined;
  const temporalClient = () => (client ??= connectClient(config));
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? CONTROLLER_TASK_QUEUE,
    ...(opts.workflowBundle
      ? { workflowBundle: opts.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
    interceptors: {
      // A bundle carries its workflow interceptors already (bundleControllerWorkflows).
      ...(opts.workflowBundle ? {} : { workflowModules: workflowInterceptorModules }),
      activity: [actorActivityInterceptors],
    },
    sinks: runSinks(opts.simulationClock),
    activities: opts.simulationClock
      ? opts.simulationClock.holding(createControllerActivities(inv, config, temporalClient))
      : createControllerActivities(inv, config, temporalClient),
  });
  return {
    worker,
    /** Runs until shut down, then releases its connections. */
    async run(): Promise<void> {
      const stopFleetMetrics = startFleetMetrics(inv, config);
      try {
        await worker.run();
      } finally {
        stopFleetMetrics();
        await connection.close();
        if (client) await (await client).connection.close();
        await inv.close();
      }
    },
  };
}

if (require.main === module) {
  void (async () => {
    const config = loadConfig();
    serveMetrics(config, 'controller');
    const controller = await createController(config);
    void ensureMetricsRetentionSchedule(config);
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stopWorker(controller.worker));
    logger.info({ taskQueue: CONTROLLER_TASK_QUEUE }, 'controller worker started');
    await controller.run();
  })().catch((err: unknown) => {
    logger.fatal({ err }, 'controller worker failed');
    process.exit(1);
  });
}
