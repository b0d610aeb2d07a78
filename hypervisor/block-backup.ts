import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { QmpClient } from './qmp';

const run = promisify(execFile);

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

/** A guest disk as QEMU runs it: `index` 0 is the root disk, 1 the first data disk. */
export interface DiskNode {
  node: string;
  index: number;
  virtualSizeBytes: number;
  bitmaps: BitmapState[];
}

/** The guest's disks, root first, with their dirty bitmaps, as QEMU reports them. */
export async function listDiskNodes(qmp: QmpClient): Promise<DiskNode[]> {
  const nodes =
    await qmp.execute<
      { 'node-name': string; image?: { 'virtual-size'?: number }; 'dirty-bitmaps'?: Partial<BitmapState>[] }[]
    >('query-named-block-nodes');
  const disks: DiskNode[] = [];
  for (const n of nodes) {
    const index = /^disk(\d+)$/.exec(n['node-name'])?.[1];
    if (index === undefined) continue;
    disks.push({
      node: n['node-name'],
      index: Number(index),
      virtualSizeBytes: n.image?.['virtual-size'] ?? 0,
      bitmaps: (n['dirty-bitmaps'] ?? []).map((b) => ({
        name: b.name ?? '',
        recording: b.recording ?? false,
        persistent: b.persistent ?? false,
        inconsistent: b.inconsistent ?? false,
        count: b.count ?? 0,
      })),
    });
  }
  return disks.sort((a, b) => a.index - b.index);
}

/**
 * The dirty bitmaps a chain can rest on: one that every disk of the guest carries (they are
 * made in one transaction), inconsistent or idle if it is so on any disk.
 */
export async function listBitmaps(qmp: QmpClient): Promise<BitmapState[]> {
  const [root, ...data] = await listDiskNodes(qmp);
  if (!root) return [];
  return root.bitmaps.flatMap((b) => {
    const same = data.map((d) => d.bitmaps.find((o) => o.name === b.name));
    if (same.some((o) => !o)) return [];
    return [
      {
        ...b,
        recording: b.recording && same.every((o) => o!.recording),
        inconsistent: b.inconsistent || same.some((o) => o!.inconsistent),
      },
    ];
  });
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

/** One disk's copy in a backup: its job id doubles as the target's node name. */
export interface DiskBackupJob {
  /** The guest disk's node (disk0, disk1, …). */
  device: string;
  jobId: string;
  targetPath: string;
}

/**
 * Starts a backup of every disk of the guest, each into its `targetPath` (already created as a
 * qcow2), in one transaction: all disks share one point in time. A full backup adds the chain's
 * persistent dirty bitmap to each disk in the same transaction, so the bitmaps record exactly
 * the writes after the copy's point in time; an incremental copies what each bitmap marks and
 * QEMU clears it only if its job succeeds. Jobs are not auto-dismissed, so an agent that
 * restarts mid-job can still read how they ended.
 */
export async function startBackupJobs(
  qmp: QmpClient,
  req: { jobs: DiskBackupJob[]; kind: 'full' | 'incremental'; bitmap: string; speedBytesPerSec: number },
): Promise<void> {
  const disks = await listDiskNodes(qmp);
  const actions: { type: string; data: Record<string, unknown> }[] = [];
  const added: string[] = [];
  try {
    for (const job of req.jobs) {
      // With `backing: null` the target is written without opening its parent: a backup only writes.
      await qmp.execute('blockdev-add', {
        driver: 'qcow2',
        'node-name': job.jobId,
        file: { driver: 'file', filename: job.targetPath },
        backing: null,
      });
      added.push(job.jobId);
      if (req.kind === 'full') {
        // A new chain replaces the disk's older virtflow bitmaps: each one costs work on every write.
        const stale = (disks.find((d) => d.node === job.device)?.bitmaps ?? [])
          .map((b) => b.name)
          .filter((n) => n.startsWith(BITMAP_PREFIX) && n !== req.bitmap);
        for (const name of stale)
          actions.push({ type: 'block-dirty-bitmap-remove', data: { node: job.device, name } });
        actions.push({
          type: 'block-dirty-bitmap-add',
          data: { node: job.device, name: req.bitmap, persistent: true },
        });
      }
      actions.push({
        type: 'blockdev-backup',
        data: {
          device: job.device,
          target: job.jobId,
          'job-id': job.jobId,
          sync: req.kind,
          'auto-dismiss': false,
          speed: req.speedBytesPerSec,
          ...(req.kind === 'incremental' ? { bitmap: req.bitmap } : {}),
        },
      });
    }
    await qmp.execute('transaction', { actions });
  } catch (err) {
    for (const node of added) await qmp.execute('blockdev-del', { 'node-name': node }).catch(() => undefined);
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
