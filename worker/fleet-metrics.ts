import type { Config } from '../domain/config';
import { logger } from '../domain/logger';
import { metrics } from '../domain/metrics';
import type { Inventory } from '../inventory/db';
import { readUsage } from '../inventory/reservations';

/**
 * The fleet gauges a controller exports (docs/metrics.md): hosts by liveness, each host's
 * memory and vCPUs allocatable/used/free, open drift findings by kind, and the age of each VM's
 * newest good backup. Read from the inventory every VIRTFLOW_FLEET_METRICS_SEC; every controller
 * exports the same values, so dashboards take max() over them.
 */
export async function sampleFleetMetrics(inv: Inventory, now = Date.now()): Promise<void> {
  const m = metrics();
  const hosts = await inv.hosts.find({}).toArray();
  const byState = new Map<string, number>([
    ['up', 0],
    ['down', 0],
    ['unreachable', 0],
    ['fenced', 0],
  ]);
  for (const h of hosts) {
    const state = h.fencedAt ? 'fenced' : h.state;
    byState.set(state, (byState.get(state) ?? 0) + 1);
  }
  for (const [state, n] of byState) m.hosts.set(n, { state });
  const usage = await readUsage(inv);
  for (const h of hosts) {
    const used = usage.get(h._id) ?? { memoryMiB: 0, vcpus: 0 };
    const set = (gauge: typeof m.hostMemory, allocatable: number, inUse: number) => {
      gauge.set(allocatable, { host: h._id, kind: 'allocatable' });
      gauge.set(inUse, { host: h._id, kind: 'used' });
      gauge.set(Math.max(0, allocatable - inUse), { host: h._id, kind: 'free' });
    };
    set(m.hostMemory, h.allocatable.memoryMiB, used.memoryMiB);
    set(m.hostVcpus, h.allocatable.vcpus, used.vcpus);
  }
  const drift = new Map<string, number>();
  for (const d of await inv.drift.find({ state: 'open' }).toArray())
    drift.set(d.kind, (drift.get(d.kind) ?? 0) + 1);
  for (const [kind, n] of drift) m.driftOpen.set(n, { kind });
  const newest = new Map<string, number>();
  const good = await inv.backups
    .find({ state: 'good' })
    .project<{ vmId: string; startedAt: Date; finishedAt?: Date }>({ vmId: 1, startedAt: 1, finishedAt: 1 })
    .toArray();
  for (const b of good) {
    const at = (b.finishedAt ?? b.startedAt).getTime();
    newest.set(b.vmId, Math.max(newest.get(b.vmId) ?? 0, at));
  }
  for (const [vm, at] of newest) m.newestBackupAge.set((now - at) / 1000, { vm });
}

/** Samples the fleet gauges until stopped; a failed sample is logged and the next one tried. */
export function startFleetMetrics(inv: Inventory, config: Config): () => void {
  if (!config.metrics.address) return () => undefined;
  const sample = () =>
    sampleFleetMetrics(inv).catch((err: unknown) => logger.warn({ err }, 'fleet metrics sample failed'));
  void sample();
  const timer = setInterval(() => void sample(), config.metrics.fleetIntervalMs);
  return () => clearInterval(timer);
}
