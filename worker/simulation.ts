import type { Config } from '../domain/config';
import { createController } from './controller';
import { startSimAgent } from './sim-agent';
import { bundleControllerWorkflows } from './workflow-modules';
import { stopWorker } from './stop-worker';

/**
 * A controller and the simulated agent in this process, on one virtual clock: the set-up that
 * measures a simulated fleet (forecasts, benchmarks). The controller holds the clock while its
 * inventory steps run, so simulated time only moves when nothing at all is working.
 */
export async function startSimulation(
  config: Config,
  opts: { taskQueue?: string; simTaskQueue?: string } = {},
) {
  const sim = await startSimAgent(config, { taskQueue: opts.simTaskQueue });
  const controller = await createController(config, {
    taskQueue: opts.taskQueue,
    simulationClock: sim.fleet.clock,
    workflowBundle: await bundleControllerWorkflows(),
  });
  const controllerRun = controller.run();
  return {
    fleet: sim.fleet,
    async stop(): Promise<void> {
      stopWorker(controller.worker);
      await controllerRun;
      await sim.stop();
    },
  };
}
