import type { ConvergenceTracker } from '../../domain/convergence';
import type { GuestConfig, GuestInfo } from '../../domain/guest';
import type { MigrationPolicy, MigrationStats } from '../../domain/migration';
import type { PatchDefinition } from '../../domain/patch';
import type { BitmapState } from '../../hypervisor/block-backup';
import type { NicConfig } from '../../domain/network';
import type { HostFacts } from '../../hypervisor/host-facts';
import type { NetworkInterface } from '../../hypervisor/host-network';
import type { BackupConsistency } from '../../inventory/schemas';

/**
 * The host agent's interface, declared once: every operation a workflow may ask of a host,
 * with its request and result. The QEMU agent (host-activities.ts) and the simulated agent
 * (sim-host-activities.ts) both implement it; workflows know a host only through it.
 *
 * Any Temporal client can schedule these with any input, so every implementation validates
 * its request and names every file from ids inside its own directories
 * (hypervisor/vm-files.ts), never from a path it was handed unless that path is checked to lie
 * in the repository it belongs to.
 *
 * Members are function properties, not methods, so TypeScript checks each implementation's
 * request type strictly against the one declared here.
 */
export interface HostContract {
  // ── The host itself ──
  /**
   * Everything the host runs, as its hypervisor sees it, with the machine's facts; with
   * `network`, also its bridges and taps and what each networked guest's agent reports.
   */
  reportHost: (req?: ReportHostRequest) => Promise<HostReport>;
  /** Restarts the agent (its supervisor starts it again): a hypervisor-service restart. */
  restartAgent: () => Promise<{ pid: number }>;

  // ── A VM's disks and guest ──
  prepareDisk: (req: PrepareDiskRequest) => Promise<{ diskPath: string }>;
  startGuest: (req: GuestStartRequest) => Promise<{ pid: number; hostId: string }>;
  waitForGuestBoot: (req: WaitForBootRequest) => Promise<GuestAliveProof & { heartbeatSeq: number | null }>;
  stopGuest: (req: StopGuestRequest) => Promise<{ how: StopOutcome }>;
  destroyGuest: (req: VmRequest) => Promise<void>;
  guestStatus: (req: VmRequest) => Promise<{ running: boolean; status: string; pid: number | null }>;
  guestInfo: (req: VmRequest) => Promise<GuestInfo>;
  screenshot: (req: VmRequest) => Promise<Screenshot>;
  /** The end of the guest's serial console log on this host (at most 64 KiB). */
  consoleLog: (req: { vmId: string; bytes: number }) => Promise<{ text: string }>;
  /** A NIC added to the running guest (its tap, its device at its slot), and its address given. */
  hotplugNic: (req: { vmId: string; nic: NicConfig }) => Promise<HotplugNicResult>;
  /** A NIC removed from the running guest once it released it, and its tap with it. */
  unplugNic: (req: { vmId: string; mac: string; timeoutMs?: number }) => Promise<{ removed: boolean }>;
  resizeDisk: (
    req: ResizeDiskRequest,
  ) => Promise<{ previousBytes: number; sizeBytes: number; online: boolean }>;
  deleteDisk: (req: VmRequest) => Promise<{ deleted: boolean }>;

  // ── Live migration: the target's incoming QEMU, the source's stream ──
  prepareIncoming: (req: GuestStartRequest & { policy: MigrationPolicy }) => Promise<IncomingEndpoint>;
  driveMigration: (req: DriveMigrationRequest) => Promise<DriveResult>;
  setMigrationBandwidth: (req: { vmId: string; maxBandwidthMiBps: number }) => Promise<void>;
  forceCompleteMigration: (req: { vmId: string; mode: 'post-copy' | 'pause' }) => Promise<void>;
  verifyGuestAlive: (req: VerifyAliveRequest) => Promise<GuestAliveProof & { seq: number | null }>;
  adoptIncomingGuest: (req: VmRequest) => Promise<void>;
  /** With `keepIfCompleted`, a destination that already runs the guest is kept and reported. */
  killIncoming: (
    req: VmRequest & { keepIfCompleted?: boolean },
  ) => Promise<{ killed: boolean; completed?: boolean }>;
  resumeSource: (req: VmRequest) => Promise<{ status: string }>;
  quitMigratedSource: (req: VmRequest) => Promise<{ quit: boolean }>;

  // ── Backups over the shared backup repository ──
  inspectLineage: (req: { vmId: string; parentPath: string }) => Promise<LineageInspection>;
  runBackup: (req: RunBackupRequest) => Promise<BackupFileFacts & { consistency: BackupConsistency }>;
  offlineBackup: (req: OfflineBackupRequest) => Promise<BackupFileFacts>;
  verifyBackupFile: (req: VerifyBackupRequest) => Promise<void>;
  deleteBackupFile: (req: { path: string }) => Promise<{ deleted: boolean }>;
  restoreDisk: (req: RestoreDiskRequest) => Promise<{ diskPath: string; identical: true }>;

  // ── Patching ──
  readPatch: (req: { name: string }) => Promise<PatchDefinition & { currentLevel: string }>;
  runPatchStep: (req: { name: string; step: 'preflight' | 'apply' | 'post' }) => Promise<StepResult>;
  bootCanary: (req: { timeoutMs: number }) => Promise<{ bootMs: number }>;

  // ── What the storage holds, for the reconciler ──
  /** Disk files on the shared datastore, sorted; with `limit`, one page of them after `after`. */
  listDatastore: (req?: { after?: string; limit?: number }) => Promise<string[]>;
  inspectFiles: (req: { paths: string[] }) => Promise<{ path: string; exists: boolean; sizeBytes: number }[]>;
}

export type HostOperation = keyof HostContract;

/** What operation `K` takes (an empty object for those that take nothing). */
export type RequestOf<K extends HostOperation> = Parameters<HostContract[K]> extends [infer A] ? A : object;

/**
 * The simulated agent serves every simulated host on one queue (`host/sim`): each request
 * also names the host it is for (the workflow's proxy adds it), and results are the same.
 */
export type RoutedHostContract = {
  [K in HostOperation]: (req: RequestOf<K> & { hostId: string }) => ReturnType<HostContract[K]>;
};

export interface VmRequest {
  vmId: string;
}

/** An image of the repository, as the controller's catalogue knows it. */
export interface ImageRef {
  path: string;
  format: string;
  sha256: string;
  /** The disk to make of it, when larger than the image. */
  sizeBytes?: number;
}

export interface PrepareDiskRequest {
  vmId: string;
  image: ImageRef;
  sizeBytes?: number;
  /** Sizes of the empty data disks to make beside it. */
  dataDisks?: number[];
}

/** What a host needs to start a VM's guest; every path is derived on the host from the VM id. */
export interface GuestStartRequest {
  vmId: string;
  memoryMiB: number;
  vcpus: number;
  guest: GuestConfig;
}

/** How a guest proved it runs: its agent answered, or (images without one) its console. */
export interface GuestAliveProof {
  via: 'guest-agent' | 'console';
}

export interface WaitForBootRequest {
  vmId: string;
  timeoutMs: number;
  /** Absent in runs begun before VMs had guest settings. */
  guestAgent?: boolean;
}

export interface StopGuestRequest {
  vmId: string;
  gracefulMs: number;
  guestAgent?: boolean;
}

export type StopOutcome = 'guest-agent' | 'not-running' | 'graceful' | 'forced' | 'killed';

export interface ResizeDiskRequest {
  vmId: string;
  sizeBytes: number;
  /** 0 (or absent) is the root disk, 1 the first data disk. */
  disk?: number;
}

/** A guest's screen as a PNG, base64 in the payload. */
export interface Screenshot {
  pngBase64: string;
  width: number;
  height: number;
}

export interface IncomingEndpoint {
  address: string;
  port: number;
  pid: number;
}

export interface DriveMigrationRequest {
  vmId: string;
  target: { address: string; port: number };
  policy: MigrationPolicy;
  memoryMiB: number;
  tracker: ConvergenceTracker | null;
  sliceMs: number;
}

export interface DriveResult {
  /** completed: switched over, source paused; failed: QEMU gave up; gave-up: the policy did. */
  outcome: 'in-progress' | 'completed' | 'failed' | 'gave-up';
  reason?: string;
  stats: MigrationStats;
  tracker: ConvergenceTracker;
  /** Last heartbeat the guest wrote on the source: the destination must go beyond it. */
  sourceHeartbeatSeq: number | null;
}

export interface VerifyAliveRequest {
  vmId: string;
  afterSeq: number | null;
  timeoutMs: number;
  guestAgent?: boolean;
}

export interface LineageInspection {
  parentExists: boolean;
  bitmaps: BitmapState[];
}

export interface RunBackupRequest {
  vmId: string;
  backupId: string;
  kind: 'full' | 'incremental';
  bitmap: string;
  targetPath: string;
  parentPath: string | null;
  virtualSizeBytes: number;
  maxSpeedMiBps: number;
  guestAgent?: boolean;
}

export interface OfflineBackupRequest {
  vmId: string;
  /** Ignored: the disk is named from the VM id (kept for runs begun before that). */
  diskPath?: string;
  targetPath: string;
  bitmap: string;
}

export interface VerifyBackupRequest {
  path: string;
  sha256: string;
  parentPath: string | null;
  dataDisks?: { index: number; sha256: string }[];
}

export interface RestoreDiskRequest {
  vmId: string;
  backupPath: string;
  /** How many data disks the backup holds (absent: runs begun before data disks). */
  dataDisks?: number;
}

export interface BackupFileFacts {
  sizeBytes: number;
  sha256: string;
  /** The whole backup: copy, then `qemu-img check` and SHA-256 of every file. */
  durationMs: number;
  /** The copy alone. */
  copyMs: number;
  /** The data disks' files, beside the root disk's (absent: the VM has none). */
  dataDisks?: DataDiskBackup[];
}

/** A backup's copy of one data disk. */
export interface DataDiskBackup {
  /** 1 is the guest's first data disk (vdb). */
  index: number;
  path: string;
  sizeBytes: number;
  sha256: string;
}

export interface StepResult {
  exitCode: number | null;
  timedOut: boolean;
  output: string;
}

export interface GuestReport {
  vmId: string;
  pid: number;
  status: string;
  memoryMiB: number;
  booted: boolean;
  lastHeartbeatSeq: number | null;
  heartbeatAgeSec: number | null;
}

export interface HotplugNicResult {
  device: string;
  tap: string;
  /** How the guest got the address: through its agent now, or from its seed at its next boot. */
  guest: string;
}

export interface ReportHostRequest {
  /** Add the host's network interfaces and the addresses its networked guests report. */
  network?: boolean;
}

export interface HostReport {
  hostId: string;
  facts: HostFacts;
  patchLevel: string;
  load: { loadAverage1m: number; memoryFreeMiB: number };
  guests: GuestReport[];
  /** With `network` asked for, on a host that serves networks. */
  network?: HostNetworkReport;
}

export interface HostNetworkReport {
  /** The bridges, VLAN links and taps the host made (by virtflow's name prefixes). */
  interfaces: NetworkInterface[];
  /** Per running guest with NICs and an agent: its addresses, or why its agent did not say. */
  guests: { vmId: string; addresses?: GuestInfo['addresses']; error?: string }[];
}
