import {
  ContinueAsNew,
  proxySinks,
  type Sinks,
  type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';

/**
 * Tells the worker when each workflow run starts and ends. A simulated fleet's clock uses it to
 * follow a chain of work across workflows (see VirtualClock): a child's start, or a run's end
 * that wakes its parent, is a step still in flight, and modelled time must wait for it. The
 * operations metrics count them (virtflow_operations_started/ended, by workflow type).
 */
export interface RunSinks extends Sinks {
  runs: {
    started(): void;
    /** How the run ended: `continued` is a continue-as-new. */
    ended(result: 'completed' | 'failed' | 'continued'): void;
  };
}

const { runs } = proxySinks<RunSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        runs.started();
        try {
          const result = await next(input);
          runs.ended('completed');
          return result;
        } catch (err) {
          runs.ended(err instanceof ContinueAsNew ? 'continued' : 'failed');
          throw err;
        }
      },
    },
  ],
});
