import type { PlacementHost } from '../domain/placement';
import type { Inventory } from './db';
import { readUsage } from './reservations';

/** Every host as placement sees it: its documents joined with what it has handed out. */
export async function placementHosts(inv: Inventory): Promise<PlacementHost[]> {
  const usage = await readUsage(inv);
  const hosts = await inv.hosts.find({}).toArray();
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
    };
  });
}
