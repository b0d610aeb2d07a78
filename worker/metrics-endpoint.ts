import { Runtime } from '@temporalio/worker';
import type { Config } from '../domain/config';
import { bindMetricMeter } from '../domain/metrics';

/**
 * Serves a worker process's Prometheus metrics when VIRTFLOW_METRICS_ADDRESS is set: the SDK
 * runtime's exporter, with virtflow's own metrics bound to the same meter. Must run before the
 * process opens its worker connection (the runtime is installed once, at its first use).
 */
export function serveMetrics(config: Config, process: 'controller' | 'host-agent', hostId?: string): void {
  if (!config.metrics.address) return;
  Runtime.install({
    telemetryOptions: {
      metrics: {
        prometheus: { bindAddress: config.metrics.address },
        globalTags: { virtflow_process: process, ...(hostId ? { host: hostId } : {}) },
      },
    },
  });
  bindMetricMeter(Runtime.instance().metricMeter);
}
