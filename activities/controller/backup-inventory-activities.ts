import { DEFAULT_PROJECT } from '../../domain/access';
import path from 'node:path';
import { metrics } from '../../domain/metrics';
import { randomBytes } from 'node:crypto';
import {
  backupRequestSchema,
  restoreRequestSchema,
  retentionSchema,
  type RetentionPolicy,
} from '../../domain/backup';
import { dataPaths, type Config } from '../../domain/config';
import { InvalidStateError, NotFoundError, parseInput, ValidationError } from '../../domain/errors';
import type { ProvisionSpec } from '../../domain/requests';
import type { BackupConsistency } from '../../inventory/schemas';
import { planRetention } from '../../domain/retention';
import type { Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { backupSchema, type BackupDoc } from '../../inventory/schemas';
import { allocateNewVmNics, getVm, claimVmIdForRun } from '../../inventory/vms';
import { recordedDisks } from '../../inventory/quotas';
import { currentRun } from './run-context';

export interface BackupPlan {
  backupId: string;
  vmId: string;
  host: string;
  running: boolean;
  /** The guest runs an agent: its file systems are frozen while the backup's point in time is taken. */
  guestAgent: boolean;
  diskPath: string;
  maxSpeedMiBps: number;
  policy?: string;
  /** Set when the request or the VM's state already rules out an incremental. */
  fullReason: string | null;
  previous: { id: string; chainId: string; bitmap: string; path: string } | null;
}

export interface StartedBackup {
  backupId: string;
  kind: 'full' | 'incremental';
  chainId: string;
  bitmap: string;
  targetPath: string;
  parentPath: string | null;
  virtualSizeBytes: number;
}

/** A readable, unique, DNS-label backup id: `<vm>-<yyyymmdd-hhmmss>-<rand>`. */
function newBackupId(vmId: string, at: Date): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${vmId.slice(0, 38)}-${stamp.toLowerCase()}-${randomBytes(2).toString('hex')}`;
}

/** Controller-side steps of backups: planning, the catalogue, retention and restore. */
export function createBackupInventoryActivities(inv: Inventory, config: Config) {
  const repo = dataPaths(config.dataDir).backups;
  const audit = (e: {
    subject: string;
    operation: string;
    outcome: 'completed' | 'failed' | 'rolled-back' | 'info';
    message: string;
    details?: Record<string, unknown>;
  }) => recordEvent(inv, { ...e, ...currentRun() });

  return {
    /** Validates the request and finds what an incremental would build on; writes nothing. */
    async planBackup(input: unknown): Promise<BackupPlan> {
      const req = parseInput(backupRequestSchema, input, '');
      const vm = await getVm(inv, req.vmId);
      if (!['running', 'stopped'].includes(vm.state) || !vm.host) {
        throw new InvalidStateError(
          `cannot back up vm ${vm._id}: it is ${vm.state}; it must be running or stopped`,
        );
      }
      const previous = await inv.backups
        .find({ vmId: vm._id, state: 'good' })
        .sort({ finishedAt: -1 })
        .limit(1)
        .next();
      // The VM's latest attempt: one that failed after the last good backup may have run its
      // copy job, and QEMU clears a dirty bitmap when the job succeeds, whatever happened after.
      // An incremental on the older backup would then silently miss the blocks written between.
      const latest = await inv.backups
        .find({ vmId: vm._id, state: { $in: ['good', 'failed'] } })
        .sort({ startedAt: -1 })
        .limit(1)
        .next();
      let fullReason: string | null = null;
      if (req.full) fullReason = 'a full backup was requested';
      else if (!previous) fullReason = 'first backup of this VM';
      else if (vm.state === 'stopped') fullReason = 'the VM is stopped: offline full backup';
      else if (latest && latest.state === 'failed')
        fullReason = `the last attempt (${latest._id}) failed, and its copy may have cleared the chain's bitmap: ${latest.failure ?? 'no reason recorded'}`;
      else if (req.fullEvery) {
        const inChain = await inv.backups.countDocuments({
          vmId: vm._id,
          chainId: previous.chainId,
          state: 'good',
        });
        if (inChain >= req.fullEvery)
          fullReason = `the chain holds ${inChain} backups (a full every ${req.fullEvery})`;
      }
      return {
        backupId: newBackupId(vm._id, new Date()),
        vmId: vm._id,
        host: vm.host,
        running: vm.state === 'running',
        guestAgent: vm.guest.guestAgent,
        diskPath: vm.diskPath,
        maxSpeedMiBps: req.maxSpeedMiBps,
        policy: req.policy,
        fullReason,
        previous: previous
          ? { id: previous._id, chainId: previous.chainId, bitmap: previous.bitmap, path: previous.path }
          : null,
      };
    },

    /** Catalogues the backup as running before a byte is written: a crash leaves a visible record, never a "good" one. */
    async catalogBackupStarted(req: {
      plan: BackupPlan;
      kind: 'full' | 'incremental';
      fullReason: string | null;
    }): Promise<StartedBackup> {
      const { plan } = req;
      const vm = await getVm(inv, plan.vmId);
      const image = await inv.images.findOne({ _id: vm.image });
      const incremental = req.kind === 'incremental' && plan.previous;
      const chainId = incremental ? plan.previous!.chainId : plan.backupId;
      const started: StartedBackup = {
        backupId: plan.backupId,
        kind: incremental ? 'incremental' : 'full',
        chainId,
        // Bitmap names stay short whatever the VM id's length: the stamp and random part suffice.
        bitmap: incremental ? plan.previous!.bitmap : `vf-${plan.backupId.slice(-20)}`,
        targetPath: path.join(repo, plan.vmId, `${plan.backupId}.qcow2`),
        parentPath: incremental ? plan.previous!.path : null,
        virtualSizeBytes: image?.virtualSizeBytes ?? 0,
      };
      if (await inv.backups.findOne({ _id: plan.backupId })) return started; // a retried step
      const now = new Date();
      await inv.backups.insertOne(
        backupSchema.parse({
          _id: plan.backupId,
          createdAt: now,
          updatedAt: now,
          revision: 1,
          vmId: plan.vmId,
          host: plan.host,
          kind: started.kind,
          state: 'running',
          chainId,
          parentId: incremental ? plan.previous!.id : null,
          bitmap: started.bitmap,
          path: started.targetPath,
          fullReason: started.kind === 'full' ? (req.fullReason ?? undefined) : undefined,
          consistency: 'crash-consistent',
          policy: plan.policy,
          vm: {
            image: vm.image,
            memoryMiB: vm.memoryMiB,
            vcpus: vm.vcpus,
            guest: vm.guest,
            project: vm.project,
            diskBytes: vm.diskBytes,
          },
          virtualSizeBytes: started.virtualSizeBytes,
          startedAt: now,
          protected: false,
        }),
      );
      return started;
    },

    async catalogBackupFinished(req: {
      backupId: string;
      sizeBytes: number;
      sha256: string;
      durationMs: number;
      copyMs: number;
      consistency?: BackupConsistency;
      dataDisks?: BackupDoc['dataDisks'];
    }): Promise<BackupDoc> {
      const now = new Date();
      const doc = await inv.backups.findOne({ _id: req.backupId });
      if (!doc) throw new NotFoundError('backup', req.backupId);
      const throughputMiBps =
        req.durationMs > 0 ? doc.virtualSizeBytes / 1024 / 1024 / (req.durationMs / 1000) : 0;
      metrics().backupBytes.record(req.sizeBytes, { kind: doc.kind });
      metrics().backupDuration.record(req.durationMs, { kind: doc.kind });
      await inv.backups.updateOne(
        { _id: req.backupId },
        {
          $set: {
            state: 'good',
            consistency: req.consistency ?? 'crash-consistent',
            sizeBytes: req.sizeBytes,
            sha256: req.sha256,
            ...(req.dataDisks?.length ? { dataDisks: req.dataDisks } : {}),
            durationMs: req.durationMs,
            throughputMiBps,
            finishedAt: now,
            verifiedAt: now,
            updatedAt: now,
          },
          $inc: { revision: 1 },
        },
      );
      await audit({
        operation: 'backup-vm',
        subject: `vm/${doc.vmId}`,
        outcome: 'completed',
        message: `${doc.kind} backup ${doc._id} of ${doc.vmId}: ${(req.sizeBytes / 1024 / 1024).toFixed(1)} MiB in ${(req.durationMs / 1000).toFixed(1)} s${doc.fullReason ? ` (full: ${doc.fullReason})` : ''}`,
        details: { backupId: doc._id, kind: doc.kind, sizeBytes: req.sizeBytes },
      });
      return (await inv.backups.findOne({ _id: req.backupId }))!;
    },

    async catalogBackupFailed(req: { backupId: string; reason: string }): Promise<void> {
      const doc = await inv.backups.findOne({ _id: req.backupId });
      if (!doc) return;
      await inv.backups.updateOne(
        { _id: req.backupId },
        { $set: { state: 'failed', failure: req.reason, updatedAt: new Date() }, $inc: { revision: 1 } },
      );
      await audit({
        operation: 'backup-vm',
        subject: `vm/${doc.vmId}`,
        outcome: 'failed',
        message: `backup ${doc._id} of ${doc.vmId} failed: ${req.reason}`,
        details: { backupId: doc._id },
      });
    },

    /** What retention would keep and prune among a VM's good backups; a running backup's parents stay. */
    async planPrune(req: { vmId: string; retention: RetentionPolicy }): Promise<{
      keep: { id: string; reason: string }[];
      prune: { id: string; path: string }[];
    }> {
      const retention = parseInput(retentionSchema, req.retention, 'retention');
      const docs = await inv.backups.find({ vmId: req.vmId, state: { $in: ['good', 'running'] } }).toArray();
      const plan = planRetention(
        docs.map((d) => ({
          id: d._id,
          finishedAt: d.finishedAt ?? d.startedAt,
          parentId: d.parentId,
          protected: d.protected || d.state === 'running',
        })),
        retention,
      );
      const byId = new Map(docs.map((d) => [d._id, d]));
      return {
        keep: [...plan.keep].map(([id, reason]) => ({ id, reason })),
        prune: plan.prune.map((id) => ({ id, path: byId.get(id)!.path })),
      };
    },

    async markBackupPruned(req: { backupId: string; reason: string }): Promise<void> {
      const doc = await inv.backups.findOne({ _id: req.backupId });
      if (!doc || doc.state === 'pruned') return;
      await inv.backups.updateOne(
        { _id: doc._id },
        { $set: { state: 'pruned', updatedAt: new Date() }, $inc: { revision: 1 } },
      );
      await audit({
        operation: 'prune-backups',
        subject: `vm/${doc.vmId}`,
        outcome: 'completed',
        message: `backup ${doc._id} pruned: ${req.reason}`,
      });
    },

    /** The files a backup depends on, newest first: itself and each parent. */
    async backupChain(req: { backupId: string }): Promise<
      {
        id: string;
        path: string;
        sha256: string;
        parentPath: string | null;
        host: string;
        dataDisks?: { index: number; sha256: string }[];
      }[]
    > {
      const chain = [];
      for (let id: string | null = req.backupId; id;) {
        const doc: BackupDoc | null = await inv.backups.findOne({ _id: id });
        if (!doc) throw new NotFoundError('backup', id);
        if (doc.state !== 'good') throw new InvalidStateError(`backup ${doc._id} is ${doc.state}, not good`);
        const parent: BackupDoc | null = doc.parentId
          ? await inv.backups.findOne({ _id: doc.parentId })
          : null;
        chain.push({
          id: doc._id,
          path: doc.path,
          sha256: doc.sha256!,
          parentPath: parent?.path ?? null,
          host: doc.host,
          ...(doc.dataDisks
            ? { dataDisks: doc.dataDisks.map(({ index, sha256 }) => ({ index, sha256 })) }
            : {}),
        });
        id = doc.parentId;
      }
      return chain;
    },

    async recordBackupVerified(req: { backupIds: string[]; ok: boolean; reason?: string }): Promise<void> {
      const now = new Date();
      for (const id of req.backupIds) {
        await inv.backups.updateOne(
          { _id: id },
          req.ok
            ? { $set: { verifiedAt: now, updatedAt: now }, $inc: { revision: 1 } }
            : {
                $set: { state: 'failed', failure: `verification failed: ${req.reason}`, updatedAt: now },
                $inc: { revision: 1 },
              },
        );
      }
      await audit({
        operation: 'verify-backup',
        subject: `backup/${req.backupIds[0]}`,
        outcome: req.ok ? 'completed' : 'failed',
        message: req.ok
          ? `verified ${req.backupIds.length} backup file(s)`
          : `verification failed: ${req.reason}`,
      });
    },

    /** A host whose agent can reach the backup repository now (the backup's own host if it is up). */
    async pickWorkingHost(req: { prefer?: string }): Promise<string> {
      const hosts = await inv.hosts.find({ state: 'up' }).sort({ _id: 1 }).toArray();
      const fresh = hosts.filter(
        (h) => Date.now() - h.agent.heartbeatAt.getTime() <= 3 * h.agent.factsIntervalMs,
      );
      const chosen = fresh.find((h) => h._id === req.prefer) ?? fresh[0];
      if (!chosen) throw new InvalidStateError('no host agent is up to reach the backup repository');
      return chosen._id;
    },

    /** Validates a restore and claims the new VM's id; the spec comes from what the backup recorded. */
    async beginRestoreVm(input: unknown): Promise<{ spec: ProvisionSpec; backupPath: string }> {
      const req = parseInput(restoreRequestSchema, input, '');
      const backup = await inv.backups.findOne({ _id: req.backupId });
      if (!backup)
        throw new ValidationError(
          'backupId',
          `no backup named "${req.backupId}" (see \`virtflow backup list\`)`,
        );
      if (backup.state !== 'good')
        throw new ValidationError('backupId', `backup ${backup._id} is ${backup.state}, not good`);
      if (req.host && !(await inv.hosts.findOne({ _id: req.host })))
        throw new ValidationError('host', `no host named "${req.host}"`);
      const spec: ProvisionSpec = {
        vmId: req.vmId,
        image: backup.vm.image,
        memoryMiB: backup.vm.memoryMiB,
        vcpus: backup.vm.vcpus,
        host: req.host,
        labels: { 'restored-from': backup._id.slice(0, 63) },
        // The restored VM belongs where its original did: a project's backups restore into it.
        project: backup.vm.project ?? DEFAULT_PROJECT,
        bootTimeoutSec: req.bootTimeoutSec,
        sshKeys: req.sshKeys ?? backup.vm.guest.sshKeys,
        userData: req.userData ?? backup.vm.guest.userData,
        // A backup taken before VMs had data disks records none.
        dataDisks: backup.vm.guest.dataDisks ?? [],
        guest: {
          ...backup.vm.guest,
          sshKeys: req.sshKeys ?? backup.vm.guest.sshKeys,
          userData: req.userData ?? backup.vm.guest.userData,
          dataDisks: backup.vm.guest.dataDisks ?? [],
          // Never the backed-up VM's NICs as they were: their MACs and addresses are its own.
          nics: undefined,
        },
      };
      // The restored disks are the backed-up VM's, at their sizes then: the quota counts those.
      const diskBytes = await recordedDisks(inv, { ...backup.vm, _id: req.vmId });
      await claimVmIdForRun(inv, spec, diskBytes, currentRun().runId);
      const nics =
        req.nics === 'none'
          ? []
          : (backup.vm.guest.nics ?? []).map((n) => ({
              network: n.network,
              ip: req.nics === 'same-addresses' ? n.ip : undefined,
            }));
      if (nics.length) spec.guest.nics = await allocateNewVmNics(inv, spec.vmId, nics);
      return { spec, backupPath: backup.path };
    },
  };
}

export type BackupInventoryActivities = ReturnType<typeof createBackupInventoryActivities>;
