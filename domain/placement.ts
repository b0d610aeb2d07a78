import { DEFAULT_CPU_BASELINE, type Accel } from './cpu';
import { heartbeatFresh } from './liveness';
import { cannotServe, type HostNetworking } from './network';
/**
 * Placement: which host is the most expedient for a VM. Named filters reject hosts (each
 * saying why), then weights rank the rest. Pure logic over plain data, so it runs the same in
 * an activity, a benchmark or a simulation.
 */

export interface PlacementHost {
  id: string;
  state: 'up' | 'down' | 'unreachable';
  maintenance: boolean;
  labels: Record<string, string>;
  cpuFlags: string[];
  qemuVersion: string;
  heartbeatAt: Date;
  factsIntervalMs: number;
  allocatable: { memoryMiB: number; vcpus: number };
  used: { memoryMiB: number; vcpus: number; runningVms: number };
  patchLevel?: string;
  cluster?: string;
  /** The host's accelerator and the CPU models it presents (absent before the probe: TCG, qemu64). */
  accel?: Accel;
  cpuModels?: string[];
  /** The uplinks the host carries networks on; absent when it serves no networks. */
  network?: HostNetworking;
}

/** A network a VM has a NIC on, and the uplink that carries it between hosts. */
export interface NetworkNeed {
  network: string;
  uplink?: string;
}

export interface PlacementRequest {
  memoryMiB: number;
  vcpus: number;
  /** CPU flags the guest needs the host to have. */
  requiredCpuFlags?: string[];
  /** Oldest QEMU that can run the guest (a migration stream needs a target at least as new). */
  minQemuVersion?: string;
  /** Every label must match the host's. */
  labels?: Record<string, string>;
  /** Hosts that must not be chosen (the source of a migration). */
  excludeHosts?: string[];
  /** A running VM moves only within its cluster: the cluster shares its storage and network. */
  cluster?: string;
  /** The VM's CPU model (its cluster's baseline): the host must present it. */
  cpuModel?: string;
  /** A live migration's source accelerator: the target must run guests with the same one. */
  accel?: Accel;
  /** The VM's networks: the host must carry each of them (by name, through its uplink). */
  networks?: NetworkNeed[];
}

export interface PlacementDecision {
  chosen: string | null;
  /** Eligible hosts, best first, with their scores. */
  ranked: { host: string; score: number }[];
  /** Why each other host was rejected. */
  rejected: Record<string, string[]>;
}

type Filter = (h: PlacementHost, r: PlacementRequest, now: number) => string | null;

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export const filters: Record<string, Filter> = {
  excluded: (h, r) => (r.excludeHosts?.includes(h.id) ? 'excluded by the request' : null),
  sameCluster: (h, r) =>
    r.cluster === undefined || h.cluster === r.cluster ? null : `in cluster ${h.cluster}, not ${r.cluster}`,
  hostUp: (h) => (h.state === 'up' ? null : `host is ${h.state}`),
  agentAlive: (h, _r, now) =>
    heartbeatFresh(h, now)
      ? null
      : `agent heartbeat is ${Math.round((now - h.heartbeatAt.getTime()) / 1000)} s old`,
  notInMaintenance: (h) => (h.maintenance ? 'host is in maintenance' : null),
  memory: (h, r) => {
    const free = h.allocatable.memoryMiB - h.used.memoryMiB;
    return r.memoryMiB <= free ? null : `needs ${r.memoryMiB} MiB memory, ${free} MiB free`;
  },
  vcpus: (h, r) => {
    const free = h.allocatable.vcpus - h.used.vcpus;
    return r.vcpus <= free ? null : `needs ${r.vcpus} vCPUs, ${free} free`;
  },
  cpuCompatible: (h, r) => {
    const missing = (r.requiredCpuFlags ?? []).filter((f) => !h.cpuFlags.includes(f));
    if (missing.length > 0) return `CPU lacks ${missing.join(', ')}`;
    if (r.minQemuVersion && compareVersions(h.qemuVersion, r.minQemuVersion) < 0)
      return `QEMU ${h.qemuVersion} is older than ${r.minQemuVersion}`;
    const models = h.cpuModels ?? [DEFAULT_CPU_BASELINE];
    if (r.cpuModel && !models.includes(r.cpuModel))
      return `cannot present CPU model ${r.cpuModel} (it presents ${models.join(', ')})`;
    const accel = h.accel ?? 'tcg';
    if (r.accel && accel !== r.accel)
      return `runs guests with ${accel}, the VM runs with ${r.accel}: a live migration needs the same accelerator`;
    return null;
  },
  networks: (h, r) => {
    const needs = r.networks ?? [];
    // One reason for a host without networking, naming every network the VM needs.
    const why = h.network
      ? needs.flatMap((n) => cannotServe(h.network, n) ?? [])
      : needs.length
        ? [cannotServe(undefined, { network: needs.map((n) => n.network).join(', ') })!]
        : [];
    return why.length === 0 ? null : why.join('; ');
  },
  labels: (h, r) => {
    const wrong = Object.entries(r.labels ?? {}).filter(([k, v]) => h.labels[k] !== v);
    return wrong.length === 0 ? null : `labels do not match ${wrong.map(([k, v]) => `${k}=${v}`).join(', ')}`;
  },
};

/**
 * Weights, each scoring 0..1 and multiplied by its factor: spread VMs by free memory left
 * after placing this one, and prefer hosts running fewer VMs.
 */
const weights: { factor: number; score: (h: PlacementHost, r: PlacementRequest) => number }[] = [
  {
    factor: 1,
    score: (h, r) => (h.allocatable.memoryMiB - h.used.memoryMiB - r.memoryMiB) / h.allocatable.memoryMiB,
  },
  { factor: 0.5, score: (h) => 1 / (1 + h.used.runningVms) },
];

/**
 * What a live migration's target must be, for a VM on `source`: in its cluster, not the source,
 * able to read the source's migration stream (a QEMU at least as new), presenting the VM's CPU
 * model and running guests with the same accelerator, carrying its networks, with room for it.
 */
export function liveMigrationRequest(
  vm: { memoryMiB: number; vcpus: number; cpuModel: string; networks?: NetworkNeed[] },
  source: PlacementHost,
): PlacementRequest {
  return {
    memoryMiB: vm.memoryMiB,
    vcpus: vm.vcpus,
    minQemuVersion: source.qemuVersion,
    cpuModel: vm.cpuModel,
    accel: source.accel ?? 'tcg',
    excludeHosts: [source.id],
    cluster: source.cluster,
    networks: vm.networks,
  };
}

export function placeVm(hosts: PlacementHost[], req: PlacementRequest, now = Date.now()): PlacementDecision {
  const rejected: Record<string, string[]> = {};
  const ranked: { host: string; score: number }[] = [];
  const filterList = Object.values(filters);
  for (const h of hosts) {
    const reasons: string[] = [];
    for (const f of filterList) {
      const why = f(h, req, now);
      if (why) reasons.push(why);
    }
    if (reasons.length > 0) {
      rejected[h.id] = reasons;
      continue;
    }
    let score = 0;
    for (const w of weights) score += w.factor * w.score(h, req);
    ranked.push({ host: h.id, score });
  }
  // Ties go to the lower host id so a decision is reproducible.
  ranked.sort((a, b) => b.score - a.score || (a.host < b.host ? -1 : 1));
  return { chosen: ranked[0]?.host ?? null, ranked, rejected };
}

/**
 * Picks among the best hosts rather than always the very best, as Nova's `host_subset_size`
 * does: when many evacuations choose at once from the same snapshot, they spread over the top
 * hosts instead of all racing for one. Small clusters (under 8 eligible hosts) keep the
 * single best choice.
 */
export function spreadChoice(decision: PlacementDecision, random: () => number = Math.random): string | null {
  const n = decision.ranked.length;
  if (n < 8) return decision.ranked[0]?.host ?? null;
  const subset = Math.ceil(Math.sqrt(n));
  return decision.ranked[Math.floor(random() * subset)].host;
}
