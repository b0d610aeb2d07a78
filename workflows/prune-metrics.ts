import { inventory } from './activity-proxies';

/** Run by the `prune-metrics` schedule: host facts samples past their retention are deleted. */
export async function pruneMetrics(): Promise<{ deleted: number; olderThan: string }> {
  return inventory.pruneMetricSamples();
}
