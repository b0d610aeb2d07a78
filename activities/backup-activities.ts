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
  qemuImgCheck,
  qemuImgCompare,
  queryJob,
  startBackupJob,
  type BitmapState,
} from '../hypervisor/block-backup';
import { imageInfo, sha256File } from '../hypervisor/qemu-img';
import { withFrozenFilesystems } from '../hypervisor/guest-agent';
import { insideDir, vmFiles } from '../hypervisor/vm-files';
import type { BackupConsistency } from '../inventory/schemas';
import type { QemuHost } from '../hypervisor/qemu-host';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface BackupActivityDeps {
  hostId: string;
  qemu: QemuHost;
  datastoreDir: string;
  /** The backup repository as this host mounts it. */
  backupsDir: string;
}

export interface BackupFileFacts {
  sizeBytes: number;
  sha256: string;
  /** The whole backup: copy, then `qemu-img check` and SHA-256 of the file. */
  durationMs: number;
  /** The copy alone. */
  copyMs: number;
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
  };

  async function facts(file: string, startedAt: number): Promise<BackupFileFacts> {
    const copyMs = Date.now() - startedAt;
    // Both only read the file: run them side by side.
    const [, sha256] = await Promise.all([qemuImgCheck(file), sha256File(file)]);
    return { sizeBytes: fs.statSync(file).size, sha256, durationMs: Date.now() - startedAt, copyMs };
  }

  return {
    /** What the last chain's incremental would rest on: its parent file and the disk's bitmaps. */
    async inspectLineage(req: { vmId: string; parentPath: string }): Promise<{
      parentExists: boolean;
      bitmaps: BitmapState[];
    }> {
      const parentExists = fs.existsSync(insideRepo(req.parentPath));
      const bitmaps = qemu.find(req.vmId) ? await listBitmaps(await qemu.monitor(req.vmId)) : [];
      return { parentExists, bitmaps };
    },

    /**
     * Backs up a running guest's disk with `blockdev-backup`, heartbeating the job's progress.
     * A retry after an agent restart re-attaches to QEMU's job; a cancelled activity cancels
     * the job and removes the partial file.
     */
    async runBackup(req: {
      vmId: string;
      backupId: string;
      kind: 'full' | 'incremental';
      bitmap: string;
      targetPath: string;
      parentPath: string | null;
      virtualSizeBytes: number;
      maxSpeedMiBps: number;
      guestAgent?: boolean;
    }): Promise<BackupFileFacts & { consistency: BackupConsistency }> {
      const ctx = Context.current();
      // A job re-attached to after a retry began before this attempt: its freeze is unknown.
      let consistency: BackupConsistency = 'crash-consistent';
      const started = Date.now();
      const target = insideRepo(req.targetPath);
      const qmp = await qemu.monitor(req.vmId);
      const id = nodeNameOf(req.backupId);
      let job = await queryJob(qmp, id);
      if (!job) {
        if (fs.existsSync(target)) {
          if (req.kind === 'incremental') {
            // A job of ours may have finished and cleared the bitmap before this retry: its
            // changes would be missing from a second attempt. Only a new full chain is safe.
            removeBackupFiles(target);
            throw ApplicationFailure.nonRetryable(
              `an earlier attempt of incremental backup ${req.backupId} left no job to re-attach to; take a full backup`,
              'LineageUncertainError',
            );
          }
          removeBackupFiles(target);
        }
        fs.mkdirSync(path.dirname(target), { recursive: true });
        const parent = req.parentPath === null ? undefined : insideRepo(req.parentPath);
        await createBackupTarget(target, req.virtualSizeBytes, parent);
        const start = async () => {
          await startBackupJob(qmp, {
            jobId: id,
            targetNode: id,
            targetPath: target,
            kind: req.kind,
            bitmap: req.bitmap,
            speedBytesPerSec: req.maxSpeedMiBps * 1024 * 1024,
          });
          copyVars(req.vmId, target);
        };
        // The job's start is the backup's point in time (copy-before-write keeps it): freeze
        // the guest's file systems only around that moment, not for the whole copy.
        if (req.guestAgent)
          consistency = (await withFrozenFilesystems(qemu.files(req.vmId).agentSocket, start)).consistency;
        else await start();
      }
      try {
        for (;;) {
          job = await queryJob(qmp, id);
          if (!job) throw new Error(`backup job ${id} vanished`);
          ctx.heartbeat({
            copiedBytes: job.currentProgress,
            totalBytes: job.totalProgress,
            status: job.status,
          });
          if (job.status === 'concluded') break;
          await Promise.race([sleep(50), ctx.cancelled]);
        }
      } catch (err) {
        await qmp.execute('job-cancel', { id }).catch(() => undefined);
        for (let i = 0; i < 50 && (await queryJob(qmp, id))?.status !== 'concluded'; i++) await sleep(100);
        await finishBackupJob(qmp, id, id);
        removeBackupFiles(target);
        throw err;
      }
      await finishBackupJob(qmp, id, id);
      if (job.error) {
        removeBackupFiles(target);
        throw ApplicationFailure.nonRetryable(`backup job failed: ${job.error}`, 'BackupFailedError');
      }
      return { ...(await facts(target, started)), consistency };
    },

    /**
     * Backs up a stopped VM's disk by flattening it, and gives the disk a fresh bitmap at the
     * same point in time, so the next backup can be incremental once the VM runs again.
     */
    async offlineBackup(req: {
      vmId: string;
      /** Ignored: the disk is named from the VM id (kept for runs begun before that). */
      diskPath?: string;
      targetPath: string;
      bitmap: string;
    }): Promise<BackupFileFacts> {
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `vm ${req.vmId} is running; offline backup needs it stopped`,
          'InvalidStateError',
        );
      }
      const started = Date.now();
      const target = insideRepo(req.targetPath);
      const diskPath = vmFiles(datastoreDir, req.vmId).disk;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.rmSync(target, { force: true });
      await flattenImage(diskPath, target);
      copyVars(req.vmId, target);
      const { stdout } = await run('qemu-img', ['info', '--output=json', diskPath]);
      const present: { name: string }[] = JSON.parse(stdout)['format-specific']?.data?.bitmaps ?? [];
      for (const { name } of present.filter((b) => b.name.startsWith(BITMAP_PREFIX))) {
        await run('qemu-img', ['bitmap', '--remove', diskPath, name]);
      }
      await run('qemu-img', ['bitmap', '--add', diskPath, req.bitmap]);
      return facts(target, started);
    },

    /** Checks a backup file: image consistency, checksum, and that it rests on its recorded parent. */
    async verifyBackupFile(req: { path: string; sha256: string; parentPath: string | null }): Promise<void> {
      const file = insideRepo(req.path);
      if (!fs.existsSync(file))
        throw ApplicationFailure.nonRetryable(`${file} is missing`, 'BackupCorruptError');
      await qemuImgCheck(file).catch((err: Error) => {
        throw ApplicationFailure.nonRetryable(
          `qemu-img check failed on ${file}: ${err.message}`,
          'BackupCorruptError',
        );
      });
      const actual = await sha256File(file);
      if (actual !== req.sha256) {
        throw ApplicationFailure.nonRetryable(
          `${file} fails its checksum: expected ${req.sha256}, found ${actual}`,
          'BackupCorruptError',
        );
      }
      const backing = (await imageInfo(file)).backingFile ?? null;
      if (backing !== req.parentPath) {
        throw ApplicationFailure.nonRetryable(
          `${file} rests on ${backing ?? 'nothing'}, the catalogue says ${req.parentPath ?? 'nothing'}`,
          'BackupCorruptError',
        );
      }
    },

    async deleteBackupFile(req: { path: string }): Promise<{ deleted: boolean }> {
      const file = insideRepo(req.path);
      const existed = fs.existsSync(file);
      removeBackupFiles(file);
      return { deleted: existed };
    },

    /**
     * Restores a backup (with its chain) as a new VM's disk: flattened into one standalone qcow2
     * on the datastore, then compared with the chain so a restore is never silently different.
     */
    async restoreDisk(req: {
      vmId: string;
      backupPath: string;
    }): Promise<{ diskPath: string; identical: true }> {
      const source = insideRepo(req.backupPath);
      const diskPath = vmFiles(datastoreDir, req.vmId).disk;
      if (qemu.find(req.vmId)) {
        throw ApplicationFailure.nonRetryable(
          `vm ${req.vmId} already runs on ${hostId}`,
          'InvalidStateError',
        );
      }
      fs.mkdirSync(datastoreDir, { recursive: true });
      fs.rmSync(diskPath, { force: true });
      await flattenImage(source, diskPath);
      const vars = vmFiles(datastoreDir, req.vmId).vars;
      fs.rmSync(vars, { force: true });
      if (fs.existsSync(varsCopyOf(source))) fs.copyFileSync(varsCopyOf(source), vars);
      if (!(await qemuImgCompare(source, diskPath))) {
        fs.rmSync(diskPath, { force: true });
        throw ApplicationFailure.nonRetryable(
          `restored disk of ${req.vmId} differs from backup ${source}`,
          'RestoreMismatchError',
        );
      }
      return { diskPath, identical: true };
    },
  };
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
