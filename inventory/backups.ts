import type { Filter } from 'mongodb';
import type { Inventory } from './db';
import { inProjects, newestFirstPage, type PageRequest } from './pages';
import type { BackupDoc } from './schemas';

/**
 * Backups newest first: good and running ones, or with `all` failed and pruned too; of one VM
 * when `vmId` is given; of VMs of `projects` only when given; a page at a time when `limit` is.
 */
export function listBackups(
  inv: Inventory,
  opts: { vmId?: string; all?: boolean; projects?: string[] | 'all' } & Partial<PageRequest> = {},
): Promise<BackupDoc[]> {
  const filter: Filter<BackupDoc> = { ...inProjects('vm.project', opts.projects ?? 'all') };
  if (opts.vmId) filter.vmId = opts.vmId;
  if (!opts.all) filter.state = { $in: ['good', 'running'] };
  return newestFirstPage(inv.backups, filter, 'startedAt', opts);
}
