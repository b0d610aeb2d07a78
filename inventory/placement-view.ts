import type { PlacementHost } from '../domain/placement';
import { SCAN_BATCH, type Inventory } from './db';
import { readRecentUsage, readUsage } from './reservations';

/**
 * Every host as placement sees it: its documents joined with what it has handed out (VMs from
 * the shared resident snapshot, a few seconds old at most, claims as they are now). `exact` reads every VM
 * now: for the second look before saying that nothing fits.
 */
export async function placementHosts(
  inv: Inventory,
  opts: { exact?: boolean } = {},
): Promise<PlacementHost[]> {
  const usage = opts.exact ? await readUsage(inv) : await readRecentUsage(inv);
  const hosts = await inv.hosts.find({}, { batchSize: SCAN_BATCH }).toArray();
  return hosts.map((h) => {
    const u = usage.get(h._id);
    return {
      id: h._id,
      state: h.state,
      maintenance: h.maintenance,
      labels: h.labels,
      cpuFlags: h.facts.cpuFlags,
      qemuVersion: h.facts.qemuVersion,
      heartbeatAt: h.agent.heartbeatAt,
      factsIntervalMs: h.agent.factsIntervalMs,
      allocatable: h.allocatable,
      used: { memoryMiB: u?.memoryMiB ?? 0, vcpus: u?.vcpus ?? 0, runningVms: u?.runningVms ?? 0 },
      patchLevel: h.patchLevel,
      cluster: h.cluster,
      accel: h.facts.accel,
      cpuModels: h.facts.cpuModels,
      network: h.facts.network,
    };
  });
}

const snapshots = new WeakMap<Inventory, { at: number; hosts: Promise<PlacementHost[]> }>();

/**
 * The placement view at most `maxAgeMs` old, shared by every caller in this process. Reading
 * every VM costs a full scan on FerretDB; a fleet evacuating hundreds of VMs at once would
 * spend its time re-reading it. Choosing from a slightly stale view is safe because the
 * capacity claim that follows re-checks the one host chosen and refuses if it is full.
 */
export function recentPlacementHosts(inv: Inventory, maxAgeMs = 1000): Promise<PlacementHost[]> {
  const cached = snapshots.get(inv);
  if (cached && Date.now() - cached.at < maxAgeMs) return cached.hosts;
  const hosts = placementHosts(inv);
  snapshots.set(inv, { at: Date.now(), hosts });
  hosts.catch(() => snapshots.delete(inv));
  return hosts;
}
