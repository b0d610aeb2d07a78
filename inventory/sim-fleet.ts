import { z } from 'zod';
import { parseInput, ValidationError } from '../domain/errors';
import { idSchema } from '../domain/ids';
import { labelsSchema } from '../domain/labels';
import { hostTaskQueue, isSimHost, SIM_HOST_PREFIX, SIM_TASK_QUEUE, twinHostPrefix } from '../domain/names';
import { simHostFacts, type SimHostSeed, type SimSpan } from '../hypervisor/sim/sim-fleet';
import type { ClosedSpan } from '../hypervisor/sim/spans';
import type { Inventory } from './db';
import { recordEvent } from './events';
import type { HostDoc, VmDoc } from './schemas';

export const simFleetSchema = z.object({
  cluster: idSchema.default('sim'),
  hosts: z.number().int().min(1).max(5000),
  vms: z.number().int().min(0).max(100_000),
  /** The same seed gives the same fleet: VM sizes and dirty rates are drawn from it. */
  seed: z.number().int().min(0).default(1),
  hostMemoryMiB: z.number().int().min(1024).default(131_072),
  patchLevel: z.string().min(1).default('0'),
  /** Labels every simulated VM carries besides its drawn dirty rate (policies select by them). */
  vmLabels: labelsSchema.default({}),
});
export type SimFleetRequest = z.input<typeof simFleetSchema>;

/** A small seeded generator (mulberry32): fleets are reproducible from their seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function simHostDoc(
  hostId: string,
  cluster: string,
  memoryMiB: number,
  patchLevel: string,
  labels: Record<string, string> = {},
): HostDoc {
  const taskQueue = hostTaskQueue(hostId);
  const now = new Date();
  return {
    _id: hostId,
    createdAt: now,
    updatedAt: now,
    revision: 1,
    state: 'up',
    maintenance: false,
    maintenanceState: 'none',
    evacuatedVms: [],
    cluster,
    labels,
    facts: simHostFacts(hostId, memoryMiB),
    allocatable: { memoryMiB, vcpus: 512 },
    patchLevel,
    agent: {
      version: 'simulated',
      pid: 0,
      startedAt: now,
      heartbeatAt: now,
      taskQueue,
      // Simulated hosts send no periodic heartbeat: on FerretDB an update is a read-then-replace,
      // and hundreds of heartbeat writes would race the maintenance writes of a rollout. They
      // count as alive for a day from their last (re)start.
      factsIntervalMs: 8 * 3_600_000,
    },
    migrationPorts: { first: 1, last: 1 },
    migrationAddress: 'sim',
  };
}

function simVmDoc(
  vmId: string,
  host: string,
  memoryMiB: number,
  vcpus: number,
  labels: Record<string, string>,
): VmDoc {
  const now = new Date();
  return {
    _id: vmId,
    createdAt: now,
    updatedAt: now,
    revision: 1,
    state: 'running',
    host,
    image: 'sim-image',
    memoryMiB,
    vcpus,
    diskPath: `sim://${vmId}`,
    labels,
    guest: {
      firmware: 'bios' as const,
      guestAgent: false,
      sshKeys: [],
      dataDisks: [],
      cpuModel: 'qemu64' as const,
    },
  };
}

async function insertInChunks<T>(insert: (docs: T[]) => Promise<unknown>, docs: T[]): Promise<void> {
  for (let i = 0; i < docs.length; i += 500) await insert(docs.slice(i, i + 500));
}

/**
 * Writes a simulated fleet into the inventory: hosts `sim-<cluster>-<n>` and running VMs spread
 * evenly over them, with sizes (2, 4 or 8 GiB) and dirty rates (up to 200 MiB/s) drawn from the
 * seed. The simulated agent serves them as soon as anything addresses them.
 */
export async function populateSimFleet(inv: Inventory, input: unknown) {
  const req = parseInput(simFleetSchema, input, '');
  const random = seeded(req.seed);
  const prefix = `${SIM_HOST_PREFIX}${req.cluster === 'sim' ? '' : `${req.cluster}-`}`;
  const hostIds = Array.from({ length: req.hosts }, (_, i) => `${prefix}${String(i + 1).padStart(4, '0')}`);
  const existing = await inv.hosts.countDocuments({ _id: { $in: hostIds } });
  if (existing > 0) {
    throw new ValidationError(
      'cluster',
      `simulated cluster "${req.cluster}" already has ${existing} host(s): remove it first with \`virtflow sim down\``,
    );
  }
  await insertInChunks(
    (d) => inv.hosts.insertMany(d),
    hostIds.map((id) => simHostDoc(id, req.cluster, req.hostMemoryMiB, req.patchLevel)),
  );
  const sizes = [2048, 4096, 4096, 8192];
  const vms = Array.from({ length: req.vms }, (_, i) => {
    const memoryMiB = sizes[Math.floor(random() * sizes.length)];
    const dirty = Math.floor(random() * 200);
    return simVmDoc(
      `${prefix}vm-${String(i + 1).padStart(5, '0')}`,
      hostIds[i % hostIds.length],
      memoryMiB,
      memoryMiB / 2048,
      { ...req.vmLabels, 'sim-dirty-mibps': String(dirty) },
    );
  });
  await insertInChunks((d) => inv.vms.insertMany(d), vms);
  return { cluster: req.cluster, hosts: hostIds, vms: vms.length };
}

/**
 * The simulated twin of real hosts: the same capacity, labels, patch level and running VMs,
 * under `sim-t<tag>-…` names (served on their own queue) in cluster `twin-<tag>`, so a dry-run touches nothing real.
 */
export async function createTwin(inv: Inventory, hostIds: string[], tag: string) {
  const twinId = (id: string) => `${twinHostPrefix(tag)}${id}`.slice(0, 63).replace(/-+$/, '');
  const hosts = await inv.hosts.find({ _id: { $in: hostIds } }).toArray();
  const cluster = `twin-${tag}`;
  await inv.hosts.insertMany(
    hosts.map((h) => simHostDoc(twinId(h._id), cluster, h.allocatable.memoryMiB, h.patchLevel, h.labels)),
  );
  const vms = await inv.vms.find({ host: { $in: hostIds }, state: 'running' }).toArray();
  if (vms.length > 0) {
    await inv.vms.insertMany(
      vms.map((v) => simVmDoc(twinId(v._id), twinId(v.host!), v.memoryMiB, v.vcpus, v.labels)),
    );
  }
  return { cluster, hosts: new Map(hosts.map((h) => [h._id, twinId(h._id)])) };
}

/** Removes a simulated cluster: its VMs, their reservations, and its hosts. */
export async function removeSimCluster(
  inv: Inventory,
  cluster: string,
): Promise<{ hosts: number; vms: number }> {
  const hostIds = (await inv.hosts.find({ cluster }).toArray())
    .filter((h) => isSimHost(h._id))
    .map((h) => h._id);
  const vms = await inv.vms.deleteMany({ host: { $in: hostIds } });
  await inv.reservations.deleteMany({ hostId: { $in: hostIds } });
  await inv.hosts.deleteMany({ _id: { $in: hostIds } });
  return { hosts: hostIds.length, vms: vms.deletedCount };
}

/** What every simulated host starts from, as the inventory records it: two reads for the fleet. */
export async function loadSimHostSeeds(inv: Inventory, taskQueue = SIM_TASK_QUEUE): Promise<SimHostSeed[]> {
  const hosts = await inv.hosts.find({ 'agent.taskQueue': taskQueue }).toArray();
  const seeds = new Map<string, SimHostSeed>(
    hosts.map((h) => [h._id, { hostId: h._id, patchLevel: h.patchLevel, labels: h.labels, guests: [] }]),
  );
  for (const v of await inv.vms.find({ state: 'running' }).toArray()) {
    seeds
      .get(v.host ?? '')
      ?.guests.push({ vmId: v._id, memoryMiB: v.memoryMiB, vcpus: v.vcpus, labels: v.labels });
  }
  return [...seeds.values()];
}

/** A simulated host came back from its restart: what a real agent's registration records. */
export async function recordSimRestart(
  inv: Inventory,
  hostId: string,
  agent: { pid: number; patchLevel: string },
): Promise<void> {
  const now = new Date();
  await inv.hosts.updateOne(
    { _id: hostId },
    {
      $set: {
        'agent.pid': agent.pid,
        'agent.startedAt': now,
        'agent.heartbeatAt': now,
        patchLevel: agent.patchLevel,
        state: 'up',
        updatedAt: now,
      },
      $inc: { revision: 1 },
    },
  );
}

/** A simulated host's span out of service, kept in the audit log for forecasts. */
export async function recordSimSpan(inv: Inventory, span: Required<SimSpan>): Promise<void> {
  await recordEvent(inv, {
    operation: 'simulated-patch',
    subject: `host/${span.hostId}`,
    outcome: 'info',
    message: `simulated host ${span.hostId} out of service from t=${span.startSec}s to t=${span.endSec}s`,
    details: { startSec: span.startSec, endSec: span.endSec },
  });
}

/** The recorded spans of some simulated hosts. */
export async function readSimSpans(inv: Inventory, hostIds: string[]): Promise<ClosedSpan[]> {
  const events = await inv.events
    .find({ operation: 'simulated-patch', subject: { $in: hostIds.map((h) => `host/${h}`) } })
    .toArray();
  return events.map((e) => ({
    hostId: e.subject.slice('host/'.length),
    startSec: Number(e.details?.startSec),
    endSec: Number(e.details?.endSec),
  }));
}

/**
 * The image simulated VMs are created from (`sim-image`): simulated hosts make no disk, so only
 * its record exists. Benchmarks and API tests create VMs from it through the real workflows.
 */
export async function insertSimImage(inv: Inventory, source: string): Promise<void> {
  const now = new Date();
  await inv.images.insertOne({
    _id: 'sim-image',
    createdAt: now,
    updatedAt: now,
    revision: 1,
    format: 'qcow2',
    sourceFormat: 'qcow2',
    firmware: 'bios',
    guestAgent: false,
    osFamily: 'linux',
    sha256: '0'.repeat(64),
    sourceSha256: '0'.repeat(64),
    sourceSizeBytes: 1,
    virtualSizeBytes: 1 << 30,
    actualSizeBytes: 0,
    path: 'sim://sim-image',
    source,
  });
}
