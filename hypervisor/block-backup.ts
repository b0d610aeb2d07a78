import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { QmpClient } from './qmp';

const run = promisify(execFile);

/** The guest's disk node, as QemuHost names it. */
export const DISK_NODE = 'disk0';

/** Every dirty bitmap virtflow creates starts with this; others on the disk are left alone. */
export const BITMAP_PREFIX = 'vf-';

export interface BitmapState {
  name: string;
  recording: boolean;
  persistent: boolean;
  /** Set when QEMU could not store the bitmap cleanly (the process was killed): it cannot be trusted. */
  inconsistent: boolean;
  count: number;
}

/** The dirty bitmaps on the guest's disk. */
export async function listBitmaps(qmp: QmpClient): Promise<BitmapState[]> {
  const nodes =
    await qmp.execute<{ 'node-name': string; 'dirty-bitmaps'?: Partial<BitmapState>[] }[]>(
      'query-named-block-nodes',
    );
  const disk = nodes.find((n) => n['node-name'] === DISK_NODE);
  return (disk?.['dirty-bitmaps'] ?? []).map((b) => ({
    name: b.name ?? '',
    recording: b.recording ?? false,
    persistent: b.persistent ?? false,
    inconsistent: b.inconsistent ?? false,
    count: b.count ?? 0,
  }));
}

export interface BackupJob {
  status: string;
  currentProgress: number;
  totalProgress: number;
  error?: string;
}

/** A block job by id, or undefined once it is gone. */
export async function queryJob(qmp: QmpClient, jobId: string): Promise<BackupJob | undefined> {
  const jobs =
    await qmp.execute<
      { id: string; status: string; 'current-progress': number; 'total-progress': number; error?: string }[]
    >('query-jobs');
  const job = jobs.find((j) => j.id === jobId);
  return job
    ? {
        status: job.status,
        currentProgress: job['current-progress'],
        totalProgress: job['total-progress'],
        error: job.error,
      }
    : undefined;
}

/**
 * Starts a backup of the guest's disk into `targetPath` (already created as a qcow2). A full
 * backup adds the chain's persistent dirty bitmap in the same transaction, so the bitmap records
 * exactly the writes after the copy's point in time; an incremental copies what the bitmap marks
 * and QEMU clears it only if the job succeeds. The job is not auto-dismissed, so an agent that
 * restarts mid-job can still read how it ended.
 */
export async function startBackupJob(
  qmp: QmpClient,
  req: {
    jobId: string;
    targetNode: string;
    targetPath: string;
    kind: 'full' | 'incremental';
    bitmap: string;
    speedBytesPerSec: number;
  },
): Promise<void> {
  // A new chain replaces the disk's older virtflow bitmaps: each one costs work on every write.
  const stale = (await listBitmaps(qmp))
    .map((b) => b.name)
    .filter((n) => n.startsWith(BITMAP_PREFIX) && n !== req.bitmap);
  // With `backing: null` the target is written without opening its parent: a backup only writes.
  await qmp.execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': req.targetNode,
    file: { driver: 'file', filename: req.targetPath },
    backing: null,
  });
  const backup = {
    type: 'blockdev-backup',
    data: {
      device: DISK_NODE,
      target: req.targetNode,
      'job-id': req.jobId,
      sync: req.kind,
      'auto-dismiss': false,
      speed: req.speedBytesPerSec,
      ...(req.kind === 'incremental' ? { bitmap: req.bitmap } : {}),
    },
  };
  const actions =
    req.kind === 'full'
      ? [
          ...stale.map((name) => ({ type: 'block-dirty-bitmap-remove', data: { node: DISK_NODE, name } })),
          { type: 'block-dirty-bitmap-add', data: { node: DISK_NODE, name: req.bitmap, persistent: true } },
          backup,
        ]
      : [backup];
  try {
    await qmp.execute('transaction', { actions });
  } catch (err) {
    await qmp.execute('blockdev-del', { 'node-name': req.targetNode }).catch(() => undefined);
    throw err;
  }
}

/** Dismisses a concluded job and detaches its target node. */
export async function finishBackupJob(qmp: QmpClient, jobId: string, targetNode: string): Promise<void> {
  await qmp.execute('job-dismiss', { id: jobId }).catch(() => undefined);
  await qmp.execute('blockdev-del', { 'node-name': targetNode }).catch(() => undefined);
}

export async function qemuImgCheck(file: string): Promise<void> {
  await run('qemu-img', ['check', '-q', file]);
}

/** `qemu-img compare`: true when both images show the guest identical bytes (backing chains included). */
export async function qemuImgCompare(a: string, b: string): Promise<boolean> {
  try {
    await run('qemu-img', ['compare', '-q', a, b]);
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 1) return false;
    throw err;
  }
}

/** Creates an empty qcow2 for a backup; an incremental one records its parent as backing file. */
export async function createBackupTarget(
  path: string,
  virtualSizeBytes: number,
  parentPath?: string,
): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2'];
  if (parentPath) args.push('-b', parentPath, '-F', 'qcow2');
  args.push(path, String(virtualSizeBytes));
  await run('qemu-img', args);
}

/** Flattens an image and its backing chain into one standalone qcow2 (restore, offline backup). */
export async function flattenImage(source: string, target: string): Promise<void> {
  await run('qemu-img', ['convert', '-q', '-O', 'qcow2', source, target]);
}
