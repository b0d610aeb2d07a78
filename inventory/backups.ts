import type { Inventory } from './db';
import type { BackupDoc } from './schemas';

/**
 * Backups newest first: good and running ones, or with `all` failed and pruned too; of one VM
 * when `vmId` is given; at most `limit`.
 */
export function listBackups(
  inv: Inventory,
  opts: { vmId?: string; all?: boolean; limit?: number } = {},
): Promise<BackupDoc[]> {
  const filter: Record<string, unknown> = {};
  if (opts.vmId) filter.vmId = opts.vmId;
  if (!opts.all) filter.state = { $in: ['good', 'running'] };
  const found = inv.backups.find(filter).sort({ startedAt: -1 });
  return (opts.limit ? found.limit(opts.limit) : found).toArray();
}
