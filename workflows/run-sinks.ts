import { proxySinks, type Sinks, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

/**
 * Tells the worker when each workflow run starts and ends. A simulated fleet's clock uses it to
 * follow a chain of work across workflows (see VirtualClock): a child's start, or a run's end
 * that wakes its parent, is a step still in flight, and modelled time must wait for it.
 */
export interface RunSinks extends Sinks {
  runs: {
    started(): void;
    ended(): void;
  };
}

const { runs } = proxySinks<RunSinks>();

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [
    {
      async execute(input, next) {
        runs.started();
        try {
          return await next(input);
        } finally {
          runs.ended();
        }
      },
    },
  ],
});
