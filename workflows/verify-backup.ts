import { inventory, onHost } from './activity-proxies';
import { isFailureOfType, operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/**
 * Verifies a backup and every parent it rests on: `qemu-img check`, the catalogued checksum and
 * the recorded backing file of each. A good chain gets `verifiedAt`; a broken one is marked failed.
 */
export async function verifyBackup(req: {
  backupId: string;
}): Promise<{ backupId: string; verified: string[] }> {
  const op = trackOperation({ operation: 'verify-backup' });
  try {
    const chain = await inventory.backupChain({ backupId: req.backupId });
    const host = await inventory.pickWorkingHost({ prefer: chain[0].host });
    op.hosts([host]);
    for (const link of chain) {
      op.phase('checking', `checking ${link.id} on ${host}`);
      try {
        await onHost(host, { startToCloseTimeout: '1 hour' }).verifyBackupFile({
          path: link.path,
          sha256: link.sha256,
          parentPath: link.parentPath,
          dataDisks: link.dataDisks,
        });
      } catch (err) {
        if (isFailureOfType(err, 'BackupCorruptError')) {
          await inventory.recordBackupVerified({ backupIds: [link.id], ok: false, reason: reasonOf(err) });
        }
        throw err;
      }
    }
    await inventory.recordBackupVerified({ backupIds: chain.map((l) => l.id), ok: true });
    op.phase('done', `${chain.length} file(s) verified`);
    return { backupId: req.backupId, verified: chain.map((l) => l.id) };
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
}
