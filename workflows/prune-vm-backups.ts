import type { RetentionPolicy } from '../domain/backup';
import { pruneBackups } from './backup-vm';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/** Applies a retention policy to one VM's backups (`--dry-run` only reports). Runs as `vm/<vmId>`. */
export async function pruneVmBackups(req: { vmId: string; retention: RetentionPolicy; dryRun: boolean }) {
  const op = trackOperation({ operation: 'prune-backups', vm: req.vmId });
  try {
    const pruned = await pruneBackups(op, req.vmId, req.retention, req.dryRun);
    op.phase('done', `${req.dryRun ? 'would prune' : 'pruned'} ${pruned.length} backup(s)`);
    return { vmId: req.vmId, dryRun: req.dryRun, pruned };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
