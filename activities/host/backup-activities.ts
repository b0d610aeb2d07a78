import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { ApplicationFailure, Context } from '@temporalio/activity';
import {
  BITMAP_PREFIX,
  createBackupTarget,
  finishBackupJob,
  flattenImage,
  listBitmaps,
  listDiskNodes,
  qemuImgCheck,
  qemuImgCompare,
  queryJob,
  startBackupJobs,
} from '../../hypervisor/block-backup';
import { imageInfo, sha256File } from '../../hypervisor/qemu-img';
import { withFrozenFilesystems } from '../../hypervisor/guest-agent';
import { dataDiskIndices, diskFileOf, insideDir, vmFiles } from '../../hypervisor/vm-files';
import type { BackupConsistency } from '../../inventory/schemas';
import { MAX_DATA_DISKS } from '../../domain/guest';
import type { QemuHost } from '../../hypervisor/qemu-host';
import type {
  BackupFileFacts,
  DataDiskBackup,
  LineageInspection,
  OfflineBackupRequest,
  RestoreDiskRequest,
  RunBackupRequest,
  VerifyBackupRequest,
} from './contract';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BackupActivityDeps {
  hostId: string;
  qemu: QemuHost;
  datastoreDir: string;
  /** The backup repository as this host mounts it. */
  backupsDir: string;
}

/** QEMU node names are at most 31 characters: derive a short, stable one from the backup id. */
function nodeNameOf(backupId: string): string {
  return `vfb${createHash('sha1').update(backupId).digest('hex').slice(0, 20)}`;
}

/** Backup, verification, pruning and restore on this host, over the shared backup repository. */
export function createBackupActivities({ hostId, qemu, datastoreDir, backupsDir }: BackupActivityDeps) {
  const insideRepo = (file: string) => insideDir(backupsDir, file, 'path');
  /**
   * A UEFI VM's variable store (its boot entries) is part of what a restore needs: each backup
   * keeps a copy of it beside its disk file, taken at the backup's point in time.
   */
  const varsCopyOf = (backupFile: string) => `${backupFile}.vars.fd`;
  const copyVars = (vmId: string, backupFile: string) => {
    const vars = vmFiles(datastoreDir, vmId).vars;
    if (fs.existsSync(vars)) fs.copyFileSync(vars, varsCopyOf(backupFile));
  };
  const removeBackupFiles = (backupFile: string) => {
    fs.rmSync(backupFile, { force: true });
    fs.rmSync(varsCopyOf(backupFile), { force: true });
    for (const index of dataDiskIndices(MAX_DATA_DISKS))
      fs.rmSync(diskFileOf(backupFile, index), { force: true });
  };

  /**
   * Runs `work` while heartbeating to Temporal every few seconds: checking and hashing a large
   * backup, or flattening a disk, outlasts any heartbeat timeout, and an activity that stops
   * heartbeating is retried while its first attempt still runs.
   */
  async function heartbeating<T>(step: string, work: () => Promise<T>): Promise<T> {
    const ctx = Context.current();
    const beat = setInterval(() => ctx.heartbeat({ step }), 5000);
    try {
      return await work();
    } finally {
      clearInterval(beat);
    }
  }

  /** Size and SHA-256 of each file of a backup (the root's, then each data disk's), once checked. */
  async function facts(file: string, dataIndices: number[], startedAt: number): Promise<BackupFileFacts> {
    const copyMs = Date.now() - startedAt;
    const checked = async (f: string) => {
      // Both only read the file: run them side by side.
      const [, sha256] = await Promise.all([qemuImgCheck(f), sha256File(f)]);
      return { sizeBytes: fs.statSync(f).size, sha256 };
    };
    const { root, dataDisks } = await heartbeating('checking', async () => {
      const root = await checked(file);
      const dataDisks: DataDiskBackup[] = [];
      for (const index of dataIndices) {
        const f = diskFileOf(file, index);
        dataDisks.push({ index, path: f, ...(await checked(f)) });
      }
      return { root, dataDisks };
    });
    return {
      ...root,
      durationMs: Date.now() - startedAt,
      copyMs,
      ...(dataDisks.length ? { dataDisks } : {}),
    };
  }

  /** Checks one backup file: image consistency, checksum, and the parent it rests on. */
  async function verifyFile(file: string, sha256: string, parentPath: string | null): Promise<void> {
    if (!fs.existsSync(file))
      throw ApplicationFailure.nonRetryable(`${file} is missing`, 'BackupCorruptError');
    await qemuImgCheck(file).catch((err: Error) => {
      throw ApplicationFailure.nonRetryable(
        `qemu-img check failed on ${file}: ${err.message}`,
        'BackupCorruptError',
      );
    });
    const actual = await sha256File(file);
    if (actual !== sha256) {
      throw ApplicationFailure.nonRetryable(
        `${file} fails its checksum: expected ${sha256}, found ${actual}`,
        'BackupCorruptError',
      );
    }
    const backing = (await imageInfo(file)).backingFile ?? null;
    if (backing !== parentPath) {
      throw ApplicationFailure.nonRetryable(
        `${file} rests on ${backing ?? 'nothing'}, the catalogue says ${parentPath ?? 'nothing'}`,
        'BackupCorruptError',
      );
    }
  }

  /** Flattens a backup file (with its chain) into a standalone disk that must compare identical. */
  async function restoreFile(vmId: string, source: string, disk: string): Promise<void> {
    if (!fs.existsSync(source))
      throw ApplicationFailure.nonRetryable(`${source} is missing`, 'RestoreMismatchError');
    fs.rmSync(disk, { force: true });
    await flattenImage(source, disk);
    if (!(await qemuImgCompare(source, disk))) {
      fs.rmSync(disk, { force: true });
      throw ApplicationFailure.nonRetryable(
        `restored disk ${disk} of ${vmId} differs from backup ${source}`,
        'RestoreMismatchError',
      );
    }
  }

  return {
    /** What the last chain's incremental would rest on: its parent file and the disks' bitmaps. */
    async inspectLineage(req: { vmId: string; parentPath: string }): Promise<LineageInspection> {
      const parent = insideRepo(req.parentPath);
      if (!qemu.find(req.vmId)) return { parentExists: fs.existsSync(parent), bitmaps: [] };
      const qmp = await qemu.monitor(req.vmId);
      // Each data disk's incremental rests on the same disk's file in the parent backup.
      const parentFiles = (await listDiskNodes(qmp)).map((d) => diskFileOf(parent, d.index));
      return { parentExists: parentFiles.every((f) => fs.existsSync(f)), bitmaps: await listBitmaps(qmp) };
    },

    /**
     * Backs up every disk of a running guest with `blockdev-backup`, all at one point in time,
     * heartbeating the jobs' progress. A retry after an agent restart re-attaches to QEMU's
     * jobs; a cancelled activity cancels them and removes the partial files.
     */
    async runBackup(req: RunBackupRequest): Promise<BackupFileFacts & { consistency: BackupConsistency }> {
      const ctx = Context.current();
      // A job re-attached to after a retry began before this attempt: its freeze is unknown.
      let consistency: BackupConsistency = 'crash-consistent';
      const started = Date.now();
      const target = insideRepo(req.targetPath);
      const parent = req.parentPath === null ? null : insideRepo(req.parentPath);
      const qmp = await qemu.monitor(req.vmId);
      const id = nodeNameOf(req.backupId);
      // The root disk's job keeps the id runs begun before data disks know; data disks add `d<i>`.
      const disks = (await listDiskNodes(qmp)).map((d) => ({
        ...d,
        jobId: d.index === 0 ? id : `${id}d${d.index}`,
        targetPath: diskFileOf(target, d.index),
        parentPath: parent === null ? undefined : diskFileOf(parent, d.index),
      }));
      const dataIndices = disks.filter((d) => d.index > 0).map((d) => d.index);
      const jobIds = disks.map((d) => d.jobId);
      const dropJobs = async () => {
        for (const jobId of jobIds) await finishBackupJob(qmp, jobId, jobId);
      };
      if (!(await queryJob(qmp, id))) {
        if (fs.existsSync(target)) {
          removeBackupFiles(target);
          if (req.kind === 'incremental') {
            // A job of ours may have finished and cleared the bitmaps before this retry: its
            // changes would be missing from a second attempt. Only a new full chain is safe.
            throw ApplicationFailure.nonRetryable(
              `an earlier attempt of incremental backup ${req.backupId} left no job to re-attach to; take a full backup`,
              'LineageUncertainError',
            );
          }
        }
        fs.mkdirSync(path.dirname(target), { recursive: true });
        // Each target as large as its disk is now, as QEMU reports it: a disk grown since
        // its image (--disk-size, resize-disk) is larger than the catalogue's image size.
        for (const d of disks)
          await createBackupTarget(d.targetPath, d.virtualSizeBytes || req.virtualSizeBytes, d.parentPath);
        const start = async () => {
          await startBackupJobs(qmp, {
            jobs: disks.map((d) => ({ device: d.node, jobId: d.jobId, targetPath: d.targetPath })),
            kind: req.kind,
            bitmap: req.bitmap,
            speedBytesPerSec: req.maxSpeedMiBps * 1024 * 1024,
          });
          copyVars(req.vmId, target);
        };
        // The jobs' start is the backup's point in time (copy-before-write keeps it): freeze
        // the guest's file systems only around that moment, not for the whole copy.
        if (req.guestAgent)
          consistency = (await withFrozenFilesystems(qemu.files(req.vmId).agentSocket, start)).consistency;
        else await start();
      }
      let jobs;
      try {
        for (;;) {
          jobs = await Promise.all(jobIds.map((jobId) => queryJob(qmp, jobId)));
          if (jobs.some((j) => !j)) throw new Error(`a backup job of ${req.backupId} vanished`);
          ctx.heartbeat({
            copiedBytes: jobs.reduce((n, j) => n + j!.currentProgress, 0),
            totalBytes: jobs.reduce((n, j) => n + j!.totalProgress, 0),
            status: jobs.map((j) => j!.status).join(','),
          });
          if (jobs.every((j) => j!.status === 'concluded')) break;
          await Promise.race([sleep(50), ctx.cancelled]);
        }
      } catch (err) {
        for (const jobId of jobIds) await qmp.execute('job-cancel', { id: jobId }).catch(() => undefined);
        for (let i = 0; i < 50; i++) {
          const left = await Promise.all(jobIds.map((jobId) => queryJob(qmp, jobId)));
          if (left.every((j) => !j || j.status === 'concluded')) break;
          await sleep(100);
        }
        await dropJobs();
        removeBackupFiles(target);
        throw err;
      }
      await dropJobs();
      const failed = jobs.find((j) => j!.error);
      if (failed) {
        removeBackupFiles(target);
        throw ApplicationFailure.nonRetryable(`backup job failed: ${failed.error}`, 'BackupFailedError');
      }
      return { ...(await facts(target, dataIndices, started)), consistency };
    },

    /**
     * Backs up a stopped VM's disks by flattening them, and gives each disk a fresh bitmap at
     * the same point in time, so the next backup can be incremental once the VM runs again.
     */
    async offlineBackup(req: OfflineBackupRequest): Promise<BackupFileFacts> {
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `vm ${req.vmId} is running; offline backup needs it stopped`,
          'InvalidStateError',
        );
      }
      const started = Date.now();
      const target = insideRepo(req.targetPath);
      const files = vmFiles(datastoreDir, req.vmId);
      const dataIndices = dataDiskIndices(MAX_DATA_DISKS).filter((i) => fs.existsSync(files.diskOf(i)));
      fs.mkdirSync(path.dirname(target), { recursive: true });
      removeBackupFiles(target);
      await heartbeating('copying', async () => {
        for (const i of [0, ...dataIndices]) {
          await flattenImage(files.diskOf(i), diskFileOf(target, i));
          await replaceBitmaps(files.diskOf(i), req.bitmap);
        }
      });
      copyVars(req.vmId, target);
      return facts(target, dataIndices, started);
    },

    /** Checks a backup's files: image consistency, checksums, and that each rests on its parent's. */
    async verifyBackupFile(req: VerifyBackupRequest): Promise<void> {
      const file = insideRepo(req.path);
      const parent = req.parentPath === null ? null : insideRepo(req.parentPath);
      await heartbeating('verifying', async () => {
        await verifyFile(file, req.sha256, parent);
        for (const d of req.dataDisks ?? [])
          await verifyFile(
            diskFileOf(file, d.index),
            d.sha256,
            parent === null ? null : diskFileOf(parent, d.index),
          );
      });
    },

    async deleteBackupFile(req: { path: string }): Promise<{ deleted: boolean }> {
      const file = insideRepo(req.path);
      const existed = fs.existsSync(file);
      removeBackupFiles(file);
      return { deleted: existed };
    },

    /**
     * Restores a backup (with its chain) as a new VM's disks: each flattened into one standalone
     * qcow2 on the datastore, then compared with the chain so a restore is never silently different.
     */
    async restoreDisk(req: RestoreDiskRequest): Promise<{ diskPath: string; identical: true }> {
      const source = insideRepo(req.backupPath);
      const files = vmFiles(datastoreDir, req.vmId);
      const dataIndices = dataDiskIndices(req.dataDisks ?? 0);
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `vm ${req.vmId} already runs on ${hostId}`,
          'InvalidStateError',
        );
      }
      fs.mkdirSync(datastoreDir, { recursive: true });
      await heartbeating('restoring', async () => {
        for (const i of [0, ...dataIndices])
          await restoreFile(req.vmId, diskFileOf(source, i), files.diskOf(i));
      });
      fs.rmSync(files.vars, { force: true });
      if (fs.existsSync(varsCopyOf(source))) fs.copyFileSync(varsCopyOf(source), files.vars);
      return { diskPath: files.disk, identical: true };
    },
  };
}

/** Drops a stopped disk's virtflow bitmaps and starts `bitmap`, the new chain's. */
async function replaceBitmaps(disk: string, bitmap: string): Promise<void> {
  const { stdout } = await run('qemu-img', ['info', '--output=json', disk]);
  const present: { name: string }[] = JSON.parse(stdout)['format-specific']?.data?.bitmaps ?? [];
  for (const { name } of present.filter((b) => b.name.startsWith(BITMAP_PREFIX))) {
    await run('qemu-img', ['bitmap', '--remove', disk, name]);
  }
  await run('qemu-img', ['bitmap', '--add', disk, bitmap]);
}
