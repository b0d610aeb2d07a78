import { MongoServerError } from 'mongodb';
import { InsufficientCapacityError, NotFoundError } from '../domain/errors';
import { SCAN_BATCH, type Inventory } from './db';
import { reservationSchema, type ReservationDoc, type VmState } from './schemas';

/** VM states that hold capacity on their host: a stopped VM keeps its place, as in Nova. */
export const capacityHoldingStates: VmState[] = ['creating', 'running', 'stopped', 'crashed', 'deleting'];

export interface HostUsage {
  memoryMiB: number;
  vcpus: number;
  /** VMs recorded on the host (any holding state) and those running. */
  vms: number;
  runningVms: number;
  /** Memory of the running VMs: what an evacuation of the host has to place elsewhere. */
  runningMemoryMiB: number;
}

const emptyUsage = (): HostUsage => ({
  memoryMiB: 0,
  vcpus: 0,
  vms: 0,
  runningVms: 0,
  runningMemoryMiB: 0,
});

/**
 * What each host has handed out: active reservations plus the VMs it holds. Reservations are
 * read first: a VM's commit sets its host before releasing its reservation, so read in this
 * order a claim is counted at least once (maybe twice, briefly), never missed.
 */
export async function readUsage(inv: Inventory, hostIds?: string[]): Promise<Map<string, HostUsage>> {
  const hostFilter = hostIds ? { $in: hostIds } : { $exists: true };
  const reservations = await inv.reservations.find({ hostId: hostFilter, state: 'active' }).toArray();
  const usage = await readVmUsage(inv, hostFilter);
  for (const r of reservations) {
    const u = usage.get(r.hostId) ?? usage.set(r.hostId, emptyUsage()).get(r.hostId)!;
    u.memoryMiB += r.memoryMiB;
    u.vcpus += r.vcpus;
  }
  return usage;
}

/**
 * What each host has handed out, for placement: the shared resident snapshot (the one claims
 * read) plus every claim a VM might not show in it yet, counted as claims
 * count them (see claimCapacity). It may count a VM twice for a moment, never miss one.
 */
export async function readRecentUsage(inv: Inventory): Promise<Map<string, HostUsage>> {
  const claims = await inv.reservations.find({}, { batchSize: SCAN_BATCH }).toArray();
  const residents = await recentResidents(inv);
  const usage = new Map([...residents.byHost].map(([h, u]) => [h, { ...u }]));
  for (const c of claims) {
    if (!counts(c, residents)) continue;
    const u = usage.get(c.hostId) ?? usage.set(c.hostId, emptyUsage()).get(c.hostId)!;
    u.memoryMiB += c.memoryMiB;
    u.vcpus += c.vcpus;
    // A claim is for a VM that will run there (a create, a restore, a migration's target).
    u.runningMemoryMiB += c.memoryMiB;
  }
  return usage;
}

/** A claim adds to a resident snapshot while active, or if released after the snapshot began. */
function counts(c: ReservationDoc, residents: Residents): boolean {
  const since = residents.takenAt - CLOCK_MARGIN_MS;
  return c.state === 'active' || (c.releasedAt !== undefined && c.releasedAt.getTime() >= since);
}

/** What the VMs recorded on each host hold (every capacity-holding state). */
async function readVmUsage(
  inv: Inventory,
  hostFilter: object,
  each?: (vm: { _id: string; host: string; state: VmState }) => void,
): Promise<Map<string, HostUsage>> {
  const vms = await inv.vms
    .find({ host: hostFilter, state: { $in: capacityHoldingStates } }, { batchSize: SCAN_BATCH })
    .project<{ _id: string; host: string | null; memoryMiB: number; vcpus: number; state: VmState }>({
      host: 1,
      memoryMiB: 1,
      vcpus: 1,
      state: 1,
    })
    .toArray();
  const usage = new Map<string, HostUsage>();
  for (const vm of vms) {
    if (!vm.host) continue;
    each?.({ _id: vm._id, host: vm.host, state: vm.state });
    const u = usage.get(vm.host) ?? usage.set(vm.host, emptyUsage()).get(vm.host)!;
    u.memoryMiB += vm.memoryMiB;
    u.vcpus += vm.vcpus;
    u.vms += 1;
    if (vm.state === 'running') {
      u.runningVms += 1;
      u.runningMemoryMiB += vm.memoryMiB;
    }
  }
  return usage;
}

export interface CapacityClaim {
  hostId: string;
  vmId: string;
  memoryMiB: number;
  vcpus: number;
  /** The workflow that holds the claim; a retried activity finds its own claim by it. */
  owner: string;
}

/**
 * Released claims are kept this long before they are deleted (see claimCapacity): well beyond
 * the age of a resident snapshot (8 s at most) plus the clock margin, and short enough that the
 * collection every claim scans stays small.
 */
const RELEASED_KEPT_MS = 15_000;
/** How often a process sweeps released claims fleet-wide (claims tidy only their own host). */
const SWEEP_EVERY_MS = 10_000;
/** Clock difference tolerated between controller processes. */
const CLOCK_MARGIN_MS = 2_000;

/**
 * What every host's VMs hold, and which they are, read at `takenAt` (the read began after it)
 * in `readMs`.
 */
interface Residents {
  takenAt: number;
  readMs: number;
  byHost: Map<string, HostUsage>;
  vmsByHost: Map<string, { id: string; state: VmState }[]>;
}

async function readResidents(inv: Inventory): Promise<Residents> {
  const takenAt = Date.now();
  const vmsByHost = new Map<string, { id: string; state: VmState }[]>();
  const byHost = await readVmUsage(inv, { $exists: true }, (vm) => {
    const list = vmsByHost.get(vm.host) ?? vmsByHost.set(vm.host, []).get(vm.host)!;
    list.push({ id: vm._id, state: vm.state });
  });
  return { takenAt, readMs: Date.now() - takenAt, byHost, vmsByHost };
}

/** The VMs (in a capacity-holding state) a host held in the shared residents snapshot, by id. */
export async function recentVmsOn(inv: Inventory, hostId: string): Promise<{ id: string; state: VmState }[]> {
  const list = (await recentResidents(inv)).vmsByHost.get(hostId) ?? [];
  return [...list].sort((a, b) => (a.id < b.id ? -1 : 1));
}

const residentSnapshots = new WeakMap<Inventory, Promise<Residents>>();

/**
 * How old a residents snapshot may be: a second, or four times what the last read took, so a
 * large fleet (a read of 5,000 VMs takes seconds on FerretDB under load) does not spend its
 * database on reading it back to back. Well under RELEASED_KEPT_MS less the clock margin: the
 * claims released since the snapshot began are still there to count.
 */
const residentsMaxAgeMs = (readMs: number) => Math.min(8000, Math.max(1000, 4 * readMs));

/** The residents snapshot, shared by every claim and placement in this process. */
async function recentResidents(inv: Inventory): Promise<Residents> {
  const cached = residentSnapshots.get(inv);
  if (cached) {
    const r = await cached.catch(() => undefined);
    if (r && Date.now() - r.takenAt < residentsMaxAgeMs(r.readMs)) return r;
    // Another caller may have started the next read meanwhile: share it.
    const next = residentSnapshots.get(inv);
    if (next && next !== cached) return next;
  }
  const fresh = readResidents(inv);
  residentSnapshots.set(inv, fresh);
  return fresh;
}

function shortfall(claim: CapacityClaim, allocatable: { memoryMiB: number; vcpus: number }, used: HostUsage) {
  const freeMemory = allocatable.memoryMiB - used.memoryMiB;
  const freeVcpus = allocatable.vcpus - used.vcpus;
  const short: string[] = [];
  if (claim.memoryMiB > freeMemory) short.push(`needs ${claim.memoryMiB} MiB memory, ${freeMemory} MiB free`);
  if (claim.vcpus > freeVcpus) short.push(`needs ${claim.vcpus} vCPUs, ${freeVcpus} free`);
  return short;
}

/**
 * Claims capacity on a host, or throws InsufficientCapacityError. Correct without atomic
 * updates: claims on a host are numbered, and claim n is inserted under the unique id
 * `<host>-r<n>` only after reading every claim numbered below n. Two racing writers cannot
 * both insert n, and the loser re-reads and sees the winner, so the newest active claim
 * always counted all the others.
 *
 * What the host's VMs hold comes from a snapshot of all VMs a few seconds old at most (see
 * residentsMaxAgeMs), shared by the claims of this process: on FerretDB every VM query is a
 * full scan, and a fleet evacuating hundreds of VMs cannot afford one per claim. A VM can only
 * arrive on a host through a claim released after it committed, so counting the claims
 * released since the snapshot began (they are kept 15 s for this) covers every VM the
 * snapshot missed. When that quick count says the host is full, the exact count (this host's
 * VMs read now) decides, so nothing is refused that fits. The newest claim stays as a
 * tombstone so numbers are never reused.
 */
export async function claimCapacity(inv: Inventory, claim: CapacityClaim): Promise<ReservationDoc> {
  for (let attempt = 0; ; attempt++) {
    const claims = await inv.reservations.find({ hostId: claim.hostId }).toArray();
    const mine = claims.find((c) => c.owner === claim.owner && c.state === 'active');
    if (mine) return mine;

    const host = await inv.hosts.findOne({ _id: claim.hostId });
    if (!host) throw new NotFoundError('host', claim.hostId);
    const residents = await recentResidents(inv);
    const quick = { ...emptyUsage(), ...residents.byHost.get(claim.hostId) };
    for (const c of claims) {
      if (!counts(c, residents)) continue;
      quick.memoryMiB += c.memoryMiB;
      quick.vcpus += c.vcpus;
    }
    if (shortfall(claim, host.allocatable, quick).length > 0) {
      const exact = (await readUsage(inv, [claim.hostId])).get(claim.hostId) ?? emptyUsage();
      const short = shortfall(claim, host.allocatable, exact);
      if (short.length > 0)
        throw new InsufficientCapacityError(`vm ${claim.vmId}`, { [claim.hostId]: short });
    }

    const seq = Math.max(0, ...claims.map((c) => c.seq)) + 1;
    const now = new Date();
    const doc = reservationSchema.parse({
      _id: `${claim.hostId}-r${seq}`,
      createdAt: now,
      updatedAt: now,
      revision: 1,
      seq,
      state: 'active',
      ...claim,
    });
    try {
      await inv.reservations.insertOne(doc);
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === 11000) || attempt >= 100) throw err;
      // Another claim took this number: back off a little and re-read everything.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt + 1, 5)));
      continue;
    }
    // Tidy up: released claims past their keeping time go, except the newest (the tombstone).
    const stale = claims.filter(
      (c) =>
        c.state === 'released' && now.getTime() - (c.releasedAt ?? c.updatedAt).getTime() > RELEASED_KEPT_MS,
    );
    // Only an `_id`-only filter is an indexed lookup on FerretDB; anything more is a full scan.
    for (const c of stale) await inv.reservations.deleteOne({ _id: c._id });
    return doc;
  }
}

/** Releases one claim. Idempotent: releasing twice, or a claim that is gone, does nothing. */
export async function releaseReservation(inv: Inventory, reservationId: string): Promise<void> {
  const doc = await inv.reservations.findOne({ _id: reservationId });
  if (!doc || doc.state === 'released') return;
  const now = new Date();
  await inv.reservations.updateOne(
    { _id: doc._id },
    { $set: { state: 'released', releasedAt: now, updatedAt: now }, $inc: { revision: 1 } },
  );
}

/**
 * Releases a workflow's claims: the one it knows by id (an indexed lookup on FerretDB), or
 * else every active claim it holds (a scan, for when the id never reached the workflow).
 */
export async function releaseClaims(inv: Inventory, owner: string, reservationId?: string): Promise<void> {
  if (reservationId) await releaseReservation(inv, reservationId);
  else await releaseOwnedReservations(inv, owner);
  await sweepReleasedClaims(inv);
}

const lastSweep = new WeakMap<Inventory, number>();

/**
 * Deletes released claims past their keeping time on every host, except each host's newest
 * claim (the tombstone that keeps numbers from being reused). At most every SWEEP_EVERY_MS per
 * process: a host nobody claims on again would otherwise keep its released claims forever,
 * and every claim's scan would pay for them.
 */
async function sweepReleasedClaims(inv: Inventory): Promise<void> {
  const now = Date.now();
  if (now - (lastSweep.get(inv) ?? 0) < SWEEP_EVERY_MS) return;
  lastSweep.set(inv, now);
  const all = await inv.reservations
    .find({})
    .project<Pick<ReservationDoc, '_id' | 'hostId' | 'seq' | 'state' | 'releasedAt' | 'updatedAt'>>({
      hostId: 1,
      seq: 1,
      state: 1,
      releasedAt: 1,
      updatedAt: 1,
    })
    .toArray();
  const newest = new Map<string, number>();
  for (const c of all) newest.set(c.hostId, Math.max(newest.get(c.hostId) ?? 0, c.seq));
  for (const c of all) {
    if (c.state !== 'released' || c.seq === newest.get(c.hostId)) continue;
    if (now - (c.releasedAt ?? c.updatedAt).getTime() > RELEASED_KEPT_MS)
      await inv.reservations.deleteOne({ _id: c._id });
  }
}

/** Releases every active claim a workflow holds (compensation, commit). */
export async function releaseOwnedReservations(inv: Inventory, owner: string): Promise<number> {
  const owned = await inv.reservations.find({ owner, state: 'active' }).toArray();
  for (const r of owned) await releaseReservation(inv, r._id);
  return owned.length;
}
