import type { Config } from '../domain/config';
import { NotFoundError } from '../domain/errors';
import { describeFence, fenceFor, loadFenceConfig } from '../domain/fence';
import { liveness, lossReason } from '../domain/liveness';
import { cannotServe } from '../domain/network';
import type { Inventory } from './db';
import { listHosts } from './hosts';
import { readUsage } from './reservations';
import type { HostDoc, VmDoc } from './schemas';
import { listVms } from './vms';

/*
 * Hosts as operators read them, the same whether the CLI reads the inventory itself or asks the
 * API: what a host document holds, without what is the controller's alone (its fence command).
 */

/** Maintenance as one word: its phase while one is under way, else whether the host is marked. */
const maintenanceOf = (h: HostDoc) =>
  h.maintenanceState && h.maintenanceState !== 'none' ? h.maintenanceState : h.maintenance ? 'yes' : 'no';

async function hostDoc(inv: Inventory, hostId: string): Promise<HostDoc> {
  const doc = await inv.hosts.findOne({ _id: hostId });
  if (!doc) throw new NotFoundError('host', hostId);
  return doc;
}

/** Every host: state, liveness, maintenance, and its capacity with what is used of it. */
export async function hostList(inv: Inventory) {
  const usage = await readUsage(inv);
  const now = Date.now();
  return (await listHosts(inv)).map((h) => ({
    hostId: h._id,
    state: h.state,
    liveness: liveness(h, now),
    maintenance: maintenanceOf(h),
    cluster: h.cluster,
    labels: h.labels,
    allocatable: h.allocatable,
    used: { memoryMiB: usage.get(h._id)?.memoryMiB ?? 0, vcpus: usage.get(h._id)?.vcpus ?? 0 },
    qemu: h.facts.qemuVersion,
    patchLevel: h.patchLevel,
    heartbeatAt: h.agent.heartbeatAt,
    needsOperator: h.needsOperator || '',
  }));
}
export type HostListView = Awaited<ReturnType<typeof hostList>>[number];

/** One host: its facts, capacity and agent, and the networks it can carry, by name. */
export async function hostDetail(inv: Inventory, hostId: string) {
  const h = await hostDoc(inv, hostId);
  // The networks it can carry: those its uplinks (or any host) serve.
  const networks = (await inv.networks.find({}).sort({ _id: 1 }).toArray())
    .filter((n) => !cannotServe(h.facts.network, { network: n._id, uplink: n.spec.uplink }))
    .map((n) => n._id);
  return {
    hostId: h._id,
    state: h.state,
    liveness: liveness(h, Date.now()),
    maintenance: maintenanceOf(h),
    cluster: h.cluster,
    labels: h.labels,
    hostname: h.facts.hostname,
    cpuModel: h.facts.cpuModel,
    vcpus: { allocatable: h.allocatable.vcpus, total: h.facts.vcpus },
    memoryMiB: { allocatable: h.allocatable.memoryMiB, total: h.facts.memoryMiB },
    qemu: h.facts.qemuVersion,
    kernel: h.facts.kernel,
    patchLevel: h.patchLevel,
    agent: {
      version: h.agent.version,
      pid: h.agent.pid,
      taskQueue: h.agent.taskQueue,
      heartbeatAt: h.agent.heartbeatAt,
    },
    migrationPorts: h.migrationPorts,
    /** null when the host serves no networks. */
    uplinks: h.facts.network ? h.facts.network.uplinks : null,
    networks,
    revision: h.revision,
  };
}
export type HostDetail = Awaited<ReturnType<typeof hostDetail>>;

/**
 * A host's liveness, fencing and HA state, with the VMs it holds that `visible` lets the reader
 * see (a project's reader is not told of other projects' VMs).
 */
export async function hostStatus(
  inv: Inventory,
  config: Pick<Config, 'fenceConfigPath' | 'ha'>,
  hostId: string,
  visible: (vm: VmDoc) => boolean = () => true,
) {
  const doc = await hostDoc(inv, hostId);
  const vms = (await listVms(inv, { host: hostId })).filter(visible);
  return {
    id: doc._id,
    state: doc.state,
    liveness: liveness(doc, Date.now()),
    'lost-because': lossReason(doc, Date.now(), config.ha.downGraceMs) ?? '',
    'needs-operator': doc.needsOperator || '',
    maintenance: doc.maintenanceState,
    'agent-heartbeat': doc.agent.heartbeatAt,
    'facts-interval-s': doc.agent.factsIntervalMs / 1000,
    fence: fenceShown(config.fenceConfigPath, doc._id),
    'fenced-at': doc.fencedAt ?? '',
    vms: vms.map((v) => `${v._id} ${v.state}${v.ha?.enabled ? ` ha p${v.ha.priority}` : ''}`),
  };
}
export type HostStatus = Awaited<ReturnType<typeof hostStatus>>;

/** The host's fence as this controller's configuration has it, its secrets never shown. */
function fenceShown(file: string | undefined, hostId: string): string {
  if (!file) return 'unknown here: configured on the controller (VIRTFLOW_FENCE_CONFIG)';
  try {
    const f = fenceFor(loadFenceConfig(file), hostId);
    return f ? describeFence(f) : 'none: HA cannot fence it';
  } catch (err) {
    return (err as Error).message;
  }
}
