import type { HostFacts } from '../host-facts';
import { defaultTimingModel, type TimingModel } from './timing-model';
import { VirtualClock } from './virtual-clock';

/** What a simulated host reports as its machine: what its agent registers and its reports repeat. */
export function simHostFacts(hostId: string, memoryMiB: number): HostFacts {
  return {
    hostname: hostId,
    vcpus: 64,
    memoryMiB,
    cpuModel: 'simulated',
    cpuFlags: [],
    qemuVersion: 'simulated',
    kernel: 'simulated',
    accel: 'tcg',
    accelReason: 'simulated',
    cpuModels: ['qemu64'],
  };
}

/** QEMU's run states, as far as the simulation models them. */
export type SimGuestStatus = 'running' | 'paused' | 'inmigrate' | 'postmigrate';

export interface SimGuest {
  vmId: string;
  memoryMiB: number;
  vcpus: number;
  dirtyMiBps: number;
  status: SimGuestStatus;
  pid: number;
  /** The guest's heartbeat counter: it goes on counting across a migration, as a real guest's does. */
  heartbeatSeq: number;
}

export interface SimHost {
  hostId: string;
  patchLevel: string;
  agentPid: number;
  guests: Map<string, SimGuest>;
  disks: Set<string>;
  /** Injected failures, read from the host's labels: `sim-patch-failures`, `sim-patch-hangs`, `sim-preflight`. */
  patchFailuresLeft: number;
  patchHangs: boolean;
  preflightSkips: boolean;
  /** The level an applied patch brings, effective once the host restarts. */
  pendingLevel?: string;
}

export interface SimMigration {
  vmId: string;
  source: string;
  target: string;
  startedSec: number;
  endSec: number;
  converges: boolean;
  transferredMiB: number;
  bandwidthMiBps: number;
}

/** What a simulated host starts from: its inventory record and the VMs recorded running on it. */
export interface SimHostSeed {
  hostId: string;
  patchLevel: string;
  labels: Record<string, string>;
  guests: { vmId: string; memoryMiB: number; vcpus: number; labels: Record<string, string> }[];
}

/** A host's span out of service, in modelled seconds, for forecasts and checks. */
export interface SimSpan {
  hostId: string;
  startSec: number;
  endSec?: number;
}

/**
 * The simulated hypervisors of many hosts, all in one process: each host's guests, disks and
 * patch level, the migrations between them, and one virtual clock. Hosts are loaded lazily
 * from the inventory the first time anything addresses them, so a fleet written by
 * `virtflow sim up` or a rollout's dry-run twin is served without a restart.
 */
export class SimFleet {
  readonly clock: VirtualClock;
  readonly migrations = new Map<string, SimMigration>();
  /** Migrations that completed, kept so a benchmark can tell extra moves from orchestration delay. */
  readonly completed: SimMigration[] = [];
  readonly spans = new Map<string, SimSpan>();
  private readonly hosts = new Map<string, SimHost>();
  private loading?: Promise<void>;
  private nextPid = 1_000_000;

  /** `load` returns every simulated host the inventory records: one read serves the whole fleet. */
  constructor(
    private readonly load: () => Promise<SimHostSeed[]>,
    readonly model: TimingModel = defaultTimingModel,
    settleMs?: number,
  ) {
    this.clock = new VirtualClock(settleMs);
  }

  pid(): number {
    return this.nextPid++;
  }

  /** A simulated host; the first call for a host not yet known re-reads the inventory. */
  async host(hostId: string): Promise<SimHost> {
    let h = this.hosts.get(hostId);
    if (!h) {
      // Concurrent misses share one read of the inventory.
      this.loading ??= this.load()
        .then((seeds) => {
          for (const seed of seeds)
            if (!this.hosts.has(seed.hostId)) this.hosts.set(seed.hostId, this.fromSeed(seed));
        })
        .finally(() => (this.loading = undefined));
      await this.loading;
      h = this.hosts.get(hostId);
      if (!h) throw new Error(`no simulated host ${hostId} in the inventory`);
    }
    return h;
  }

  private fromSeed(seed: SimHostSeed): SimHost {
    const labels = seed.labels;
    return {
      hostId: seed.hostId,
      patchLevel: seed.patchLevel,
      agentPid: this.pid(),
      disks: new Set(seed.guests.map((g) => g.vmId)),
      guests: new Map(
        seed.guests.map((g) => [
          g.vmId,
          {
            vmId: g.vmId,
            memoryMiB: g.memoryMiB,
            vcpus: g.vcpus,
            dirtyMiBps: Number(g.labels['sim-dirty-mibps'] ?? 0),
            status: 'running',
            pid: this.pid(),
            heartbeatSeq: 1,
          },
        ]),
      ),
      patchFailuresLeft: Number(labels['sim-patch-failures'] ?? 0),
      patchHangs: labels['sim-patch-hangs'] === 'true',
      preflightSkips: labels['sim-preflight'] === 'skip',
    };
  }
}
