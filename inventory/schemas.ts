import { z } from 'zod';
import { accelSchema } from '../domain/cpu';
import { firmwareSchema, guestConfigSchema } from '../domain/guest';
import { idSchema } from '../domain/ids';
import { imageSourceFormats } from '../domain/images';
import type { NetworkSpec } from '../domain/network';

/**
 * Inventory documents (DESIGN.md §5). Every document has a readable DNS-label `_id`,
 * `createdAt`, `updatedAt` and a `revision` bumped by every write. Writers parse with these
 * schemas before inserting, so a malformed document never reaches the database.
 */
const stamped = {
  _id: idSchema,
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
};

const labels = z.record(z.string(), z.string());

export const hostSchema = z.object({
  ...stamped,
  state: z.enum(['up', 'down', 'unreachable']),
  /** True from the moment a host starts entering maintenance: placement skips it. */
  maintenance: z.boolean(),
  /** Where maintenance stands; `blocked` waits for an operator, with the reason beside it. */
  maintenanceState: z.enum(['none', 'entering', 'in-maintenance', 'blocked']).default('none'),
  maintenanceReason: z.string().optional(),
  /** VMs moved off by the last evacuation, so exiting maintenance can bring them back. */
  evacuatedVms: z.array(z.string()).default([]),
  cluster: z.string(),
  labels,
  /** What the host really is, as its agent read it from the OS and QEMU. */
  facts: z.object({
    hostname: z.string(),
    vcpus: z.number().int().positive(),
    memoryMiB: z.number().int().positive(),
    cpuModel: z.string(),
    cpuFlags: z.array(z.string()),
    qemuVersion: z.string(),
    kernel: z.string(),
    /** Absent on hosts registered before the probe: they ran TCG with the qemu64 model. */
    accel: accelSchema.optional(),
    accelReason: z.string().optional(),
    cpuModels: z.array(z.string()).optional(),
    /** The uplinks the host carries networks on; absent when its agent serves no networks. */
    network: z.object({ uplinks: z.array(z.string()) }).optional(),
  }),
  /** What placement may hand out: memory the operator allows, vCPUs times the overcommit ratio. */
  allocatable: z.object({ vcpus: z.number().int().positive(), memoryMiB: z.number().int().positive() }),
  patchLevel: z.string(),
  agent: z.object({
    version: z.string(),
    pid: z.number().int(),
    startedAt: z.date(),
    heartbeatAt: z.date(),
    taskQueue: z.string(),
    factsIntervalMs: z.number().int().positive(),
  }),
  migrationPorts: z.object({ first: z.number().int(), last: z.number().int() }),
  /** Where other hosts reach this one's incoming migration ports. */
  migrationAddress: z.string(),
  /**
   * How to fence the host (power it off, or kill its agent and guests) before its VMs restart
   * elsewhere: a shell command that exits 0 only once it has confirmed the host runs nothing.
   */
  fence: z.object({ command: z.string().min(1), timeoutSec: z.number().int().positive() }).optional(),
  /** Why the host waits for an operator (a fence that failed); empty when it does not. */
  needsOperator: z.string().optional(),
  /** When the host was last fenced; cleared when its agent registers again. */
  fencedAt: z.date().nullable().optional(),
});
export type HostDoc = z.infer<typeof hostSchema>;
export type HostState = HostDoc['state'];

export const migrationIntentSchema = z.object({
  target: idSchema,
  workflowId: z.string(),
  runId: z.string(),
  phase: z.enum(['transferring', 'verified']),
  since: z.date(),
});
export type MigrationIntent = z.infer<typeof migrationIntentSchema>;

export const vmStates = ['creating', 'running', 'stopped', 'crashed', 'deleting'] as const;
export const vmSchema = z.object({
  ...stamped,
  state: z.enum(vmStates),
  /** The one host that runs (or last ran) this VM; it holds the VM's capacity. */
  host: idSchema.nullable(),
  image: idSchema,
  memoryMiB: z.number().int().positive(),
  vcpus: z.number().int().positive(),
  diskPath: z.string(),
  /**
   * Each disk's provisioned size in bytes, the root disk first (vda, vdb, …): recorded at create
   * or restore and on every growth, and what the project's disk quota counts. Absent on VMs
   * recorded before disk quotas: their image's size and their data disks' sizes at creation.
   */
  diskBytes: z.array(z.number().int().nonnegative()).optional(),
  labels,
  /** Who may see and operate it through the API (domain/access.ts); absent on older VMs: the default. */
  project: idSchema.optional(),
  stateReason: z.string().optional(),
  /** How the guest boots (from its image) and its first-boot configuration. */
  guest: guestConfigSchema,
  /** The run of the createVm workflow that claimed this id; lets a retried step recognise its own claim. */
  createdByRun: z.string().optional(),
  /** Restart the VM when its guest dies or its host is lost (domain/ha.ts). */
  ha: z.object({ enabled: z.boolean(), priority: z.number().int().nonnegative() }).optional(),
  /**
   * A live migration that owns the VM: written with the target's claim, before anything moves,
   * and cleared only by the migration's own commit or rollback record. HA, the reconciler and
   * drift fixes leave a VM with an intent alone; `verified` means the guest runs on the target
   * and the migration only moves forward from there.
   */
  migration: migrationIntentSchema.nullable().optional(),
  /**
   * The run of the migration that committed the VM where it is: a retried commit recognises its
   * own write, and tells it from HA having taken the VM over (its target was fenced).
   */
  migratedBy: z.string().optional(),
});
export type VmDoc = z.infer<typeof vmSchema>;

/** The claim of one VM revision: its unique `_id` (`<vmId>@<revision>`) lets one writer win it. */
export interface VmWriteDoc {
  _id: string;
  vmId: string;
  revision: number;
  at: Date;
}
export type VmState = VmDoc['state'];

export const imageSchema = z.object({
  ...stamped,
  /** What the repository stores: always qcow2, converted at import. */
  format: z.literal('qcow2'),
  /** The format the image arrived in. */
  sourceFormat: z.enum(imageSourceFormats),
  /** How a VM of this image boots, and whether its guest runs an agent (domain/guest.ts). */
  firmware: firmwareSchema,
  guestAgent: z.boolean(),
  /** The guest OS family, for the operator (linux, windows, bsd, other). */
  osFamily: z.enum(['linux', 'windows', 'bsd', 'other']),
  /** The project whose VMs alone are made from it; absent: a fleet image, for every project. */
  project: idSchema.optional(),
  /** Of the stored qcow2: a host re-checks it before making a disk from the image. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Of the file as it arrived, so importing the same file again is recognised. */
  sourceSha256: z.string().regex(/^[0-9a-f]{64}$/),
  sourceSizeBytes: z.number().int().positive(),
  virtualSizeBytes: z.number().int().positive(),
  actualSizeBytes: z.number().int().nonnegative(),
  /** Content-addressed path in the image repository. */
  path: z.string(),
  source: z.string(),
});
export type ImageDoc = z.infer<typeof imageSchema>;

/**
 * A claim on a host's capacity. Claims on one host form a chain by `seq`: a claim is made by
 * inserting `<hostId>-r<seq>` with the next free seq after checking every earlier claim, so
 * the unique `_id` arbitrates races even where updates are not atomic (FerretDB).
 */
export const reservationSchema = z.object({
  _id: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
  hostId: idSchema,
  seq: z.number().int().positive(),
  vmId: idSchema,
  memoryMiB: z.number().int().nonnegative(),
  vcpus: z.number().int().nonnegative(),
  owner: z.string(),
  state: z.enum(['active', 'released']),
  /** When it was released: kept a while so claims reading an older resident snapshot still count it. */
  releasedAt: z.date().optional(),
});
export type ReservationDoc = z.infer<typeof reservationSchema>;

/** Exclusive ownership of a resource (`vm-<id>`), taken by a unique insert, with a fencing epoch. */
export const leaseSchema = z.object({
  _id: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
  resource: z.string(),
  owner: z.string(),
  epoch: z.number().int().positive(),
});
export type LeaseDoc = z.infer<typeof leaseSchema>;

/** One backup in the catalogue; incrementals point at their parent, together a chain. */
export const backupSchema = z.object({
  _id: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
  vmId: idSchema,
  host: idSchema,
  kind: z.enum(['full', 'incremental']),
  /** running: being written; good: complete and checked; failed; pruned: deleted by retention. */
  /** `missing`: the reconciler found the file gone or changed; it is no longer offered for restore. */
  state: z.enum(['running', 'good', 'failed', 'pruned', 'missing']),
  chainId: z.string(),
  parentId: z.string().nullable(),
  /** The persistent dirty bitmap on the VM's disk that tracks writes since this chain's last backup. */
  bitmap: z.string(),
  path: z.string(),
  /** Why a full backup was taken where an incremental was possible. */
  fullReason: z.string().optional(),
  /** application-consistent: the guest agent froze the file systems for the point in time. */
  consistency: z.enum(['crash-consistent', 'application-consistent']),
  policy: z.string().optional(),
  /** What a restore needs to recreate the VM. */
  vm: z.object({
    image: z.string(),
    memoryMiB: z.number().int(),
    vcpus: z.number().int(),
    guest: guestConfigSchema,
    /** The project of the VM it was taken from (absent before VMs had projects: the default). */
    project: idSchema.optional(),
    /** Its disks' provisioned sizes, root first (absent before disk quotas): a restore claims them. */
    diskBytes: z.array(z.number().int().nonnegative()).optional(),
  }),
  virtualSizeBytes: z.number().int().nonnegative(),
  sizeBytes: z.number().int().nonnegative().optional(),
  sha256: z.string().optional(),
  /** The data disks' files, beside the root disk's, at the same point in time. */
  dataDisks: z
    .array(
      z.object({
        index: z.number().int().positive(),
        path: z.string(),
        sizeBytes: z.number().int().nonnegative(),
        sha256: z.string(),
      }),
    )
    .optional(),
  startedAt: z.date(),
  finishedAt: z.date().optional(),
  durationMs: z.number().nonnegative().optional(),
  throughputMiBps: z.number().nonnegative().optional(),
  protected: z.boolean().default(false),
  verifiedAt: z.date().optional(),
  failure: z.string().optional(),
});
export type BackupDoc = z.infer<typeof backupSchema>;
export type BackupConsistency = BackupDoc['consistency'];

export const backupPolicyDocSchema = z.object({
  _id: idSchema,
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
  /** The policy as validated by backupPolicySchema (domain/backup.ts). */
  spec: z.record(z.string(), z.unknown()),
  scheduleId: z.string(),
  consecutiveFailures: z.number().int().nonnegative(),
  lastRunAt: z.date().optional(),
  lastOutcome: z.string().optional(),
});
export type BackupPolicyDoc = z.infer<typeof backupPolicyDocSchema>;

export const eventSchema = z.object({
  _id: z.string(),
  at: z.date(),
  operation: z.string(),
  subject: z.string(),
  outcome: z.enum(['completed', 'failed', 'rolled-back', 'info']),
  message: z.string(),
  workflowId: z.string().optional(),
  runId: z.string().optional(),
  /** Who started the operation (`token:<name>`, `local:<user>`); absent for schedules and older runs. */
  actor: z.string().optional(),
  /** The API token it came through. */
  tokenId: z.string().optional(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type EventDoc = z.infer<typeof eventSchema>;

export const metricsSchema = z.object({
  _id: z.string(),
  hostId: idSchema,
  at: z.date(),
  host: z.object({ loadAverage1m: z.number(), memoryFreeMiB: z.number(), runningVms: z.number().int() }),
  vms: z.array(
    z.object({
      vmId: z.string(),
      pid: z.number().int(),
      status: z.string(),
      memoryMiB: z.number(),
      heartbeatAgeSec: z.number().nullable(),
    }),
  ),
});
export type MetricsDoc = z.infer<typeof metricsSchema>;

/** Kinds of disagreement between the inventory and what the hosts really run and store. */
export const driftKinds = [
  'vm-not-running',
  'orphan-process',
  'duplicate-vm',
  'orphan-disk',
  'leaked-reservation',
  'backup-missing',
  'unfinished-migration',
  'mass-host-loss',
  'nic-drift',
  'orphan-interface',
] as const;
export type DriftKind = (typeof driftKinds)[number];

/**
 * One finding of the reconciler. Its id is derived from what it is about, so finding the same
 * drift again updates it instead of adding another. `fixed`: a safe fix-up was applied;
 * `open`: it waits for an operator (`virtflow audit fix <id>`); `resolved`: gone since.
 */
export const driftSchema = z.object({
  _id: z.string(),
  createdAt: z.date(),
  updatedAt: z.date(),
  revision: z.number().int().nonnegative(),
  kind: z.enum(driftKinds),
  hostId: z.string().nullable(),
  subject: z.string(),
  message: z.string(),
  state: z.enum(['open', 'fixed', 'resolved']),
  /** What was done automatically, or the command that would fix it. */
  fix: z.string(),
  lastSeenAt: z.date(),
});
export type DriftDoc = z.infer<typeof driftSchema>;

/** A network VMs attach to (domain/network.ts); `_id` is its name. */
export interface NetworkDoc {
  _id: string;
  createdAt: Date;
  updatedAt: Date;
  revision: number;
  spec: NetworkSpec;
}

/**
 * One address or MAC held by one VM NIC. The `_id` (`ip/<network>/<address>` or `mac/<mac>`) is
 * the arbitration: of two VMs inserting the same one, exactly one insert succeeds.
 */
export interface NicClaimDoc {
  _id: string;
  kind: 'ip' | 'mac';
  network: string;
  vmId: string;
  at: Date;
}
