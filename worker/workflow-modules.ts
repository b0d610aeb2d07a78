import type { InjectedSinks } from '@temporalio/worker';
import type { VirtualClock } from '../hypervisor/sim/virtual-clock';
import type { RunSinks } from '../workflows/run-sinks';

/** Workflow interceptor modules every controller bundle carries. */
export const workflowInterceptorModules = [require.resolve('../workflows/run-sinks')];

/** The worker's side of `run-sinks`: a simulated fleet's clock follows runs; otherwise nothing. */
export function runSinks(clock?: VirtualClock): InjectedSinks<RunSinks> {
  return {
    runs: {
      started: {
        fn: (info) => clock?.runStarted(info.workflowId, info.parent?.workflowId),
        callDuringReplay: false,
      },
      ended: {
        fn: (info) => clock?.runEnded(info.workflowId, info.parent?.workflowId),
        callDuringReplay: false,
      },
    },
  };
}
