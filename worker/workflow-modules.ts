import path from 'node:path';
import {
  bundleWorkflowCode,
  DefaultLogger,
  type InjectedSinks,
  type WorkflowBundle,
} from '@temporalio/worker';
import { repoRoot } from '../domain/config';
import { metrics } from '../domain/metrics';
import type { VirtualClock } from '../hypervisor/sim/virtual-clock';
import type { RunSinks } from '../workflows/run-sinks';

/** Workflow interceptor modules every controller bundle carries. */
export const workflowInterceptorModules = [
  require.resolve('../workflows/run-sinks'),
  require.resolve('../workflows/actor-propagation'),
];

/** The controller's workflows bundled once, for workers that share one bundle (simulations, tests). */
export function bundleControllerWorkflows(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: path.join(repoRoot, 'workflows'),
    workflowInterceptorModules,
    logger: new DefaultLogger('WARN'),
  });
}

/** The worker's side of `run-sinks`: a simulated fleet's clock follows runs; otherwise nothing. */
export function runSinks(clock?: VirtualClock): InjectedSinks<RunSinks> {
  return {
    runs: {
      started: {
        fn: (info) => {
          metrics().operationsStarted.add(1, { kind: info.workflowType });
          clock?.runStarted(info.workflowId, info.parent?.workflowId);
        },
        callDuringReplay: false,
      },
      ended: {
        fn: (info, result) => {
          metrics().operationsEnded.add(1, { kind: info.workflowType, result });
          clock?.runEnded(info.workflowId, info.parent?.workflowId);
        },
        callDuringReplay: false,
      },
    },
  };
}
