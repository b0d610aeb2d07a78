import type { Config } from '../../domain/config';
import type { Inventory } from '../../inventory/db';

/**
 * Keeps the `metrics` collection (host facts samples, one per host per facts interval) within
 * VIRTFLOW_METRICS_RETENTION_HOURS. FerretDB has no TTL indexes, so the `prune-metrics` schedule
 * runs this every hour; one delete by time scans the collection once, which it can afford hourly.
 */
export function createMetricsRetentionActivities(inv: Inventory, config: Config) {
  return {
    async pruneMetricSamples(): Promise<{ deleted: number; olderThan: string }> {
      const olderThan = new Date(Date.now() - config.metrics.retentionMs);
      const res = await inv.metrics.deleteMany({ at: { $lt: olderThan } });
      return { deleted: res.deletedCount, olderThan: olderThan.toISOString() };
    },
  };
}
