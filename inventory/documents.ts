/**
 * The shapes of inventory documents (DESIGN.md §5). Every document has a readable DNS-label
 * `_id`, `createdAt`, `updatedAt` and a `revision` bumped by every write.
 */
export interface Stamped {
  _id: string;
  createdAt: Date;
  updatedAt: Date;
  revision: number;
}

export type HostState = 'up' | 'down' | 'unreachable';

export interface HostDoc extends Stamped {
  state: HostState;
  maintenance: boolean;
  cluster: string;
  labels: Record<string, string>;
  /** What the host really is, as its agent read it from the OS and QEMU. */
  facts: {
    hostname: string;
    vcpus: number;
    memoryMiB: number;
    cpuModel: string;
    cpuFlags: string[];
    qemuVersion: string;
    kernel: string;
  };
  /** What placement may hand out: the facts less what the operator keeps back. */
  allocatable: { vcpus: number; memoryMiB: number };
  patchLevel: string;
  agent: { version: string; pid: number; startedAt: Date; heartbeatAt: Date; taskQueue: string };
  migrationPorts: { first: number; last: number };
}

export type VmState = 'creating' | 'running' | 'stopped' | 'crashed' | 'deleting';

export interface VmDoc extends Stamped {
  state: VmState;
  /** The one host that runs (or last ran) this VM. */
  host: string | null;
  imageId: string;
  memoryMiB: number;
  vcpus: number;
  diskPath: string;
  labels: Record<string, string>;
  stateReason?: string;
}

export interface EventDoc {
  _id: string;
  at: Date;
  operation: string;
  subject: string;
  outcome: 'completed' | 'failed' | 'rolled-back' | 'info';
  message: string;
  workflowId?: string;
  runId?: string;
  details?: Record<string, unknown>;
}

export interface MetricsDoc {
  _id: string;
  hostId: string;
  at: Date;
  host: { loadAverage1m: number; memoryFreeMiB: number; runningVms: number };
  vms: { vmId: string; pid: number; status: string; memoryMiB: number; heartbeatAgeSec: number | null }[];
}
