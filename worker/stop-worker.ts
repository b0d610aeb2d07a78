import type { Worker } from '@temporalio/worker';

/**
 * Asks a worker to stop, whatever stopped it already. A terminal's Ctrl-C sends SIGINT to the
 * whole process group, and the SDK's runtime shuts its workers down on that same signal, so by
 * the time virtflow's own handler runs the worker may be stopping or stopped; `Worker.shutdown`
 * throws then ("Not running"), which once crashed the controller on the way out.
 */
export function stopWorker(worker: Pick<Worker, 'getState' | 'shutdown'>): void {
  if (worker.getState() === 'RUNNING') worker.shutdown();
}
