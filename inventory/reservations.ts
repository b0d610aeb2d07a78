import { MongoServerError } from 'mongodb';
import { InsufficientCapacityError, NotFoundError } from '../domain/errors';
import type { Inventory } from './db';
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
  const vms = await inv.vms
    .find({ host: hostFilter, state: { $in: capacityHoldingStates } })
    .project<{ host: string; memoryMiB: number; vcpus: number; state: VmState }>({
      host: 1,
      memoryMiB: 1,
      vcpus: 1,
      state: 1,
    })
    .toArray();
  const usage = new Map<string, HostUsage>();
  const at = (hostId: string) => usage.get(hostId) ?? usage.set(hostId, emptyUsage()).get(hostId)!;
  for (const r of reservations) {
    const u = at(r.hostId);
    u.memoryMiB += r.memoryMiB;
    u.vcpus += r.vcpus;
  }
  for (const vm of vms) {
    const u = at(vm.host);
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
 * Claims capacity on a host, or throws InsufficientCapacityError. Correct without atomic
 * updates: claims on a host are numbered, and claim n is inserted under the unique id
 * `<host>-r<n>` only after reading every claim numbered below n. Two racing writers cannot
 * both insert n, and the loser re-reads and sees the winner, so the newest active claim
 * always counted all the others. Released claims are deleted except the newest, which stays
 * as a tombstone so numbers are never reused.
 */
export async function claimCapacity(inv: Inventory, claim: CapacityClaim): Promise<ReservationDoc> {
  for (let attempt = 0; ; attempt++) {
    const mine = await inv.reservations.findOne({
      owner: claim.owner,
      hostId: claim.hostId,
      state: 'active',
    });
    if (mine) return mine;

    const host = await inv.hosts.findOne({ _id: claim.hostId });
    if (!host) throw new NotFoundError('host', claim.hostId);
    const newest = await inv.reservations.find({ hostId: claim.hostId }).sort({ seq: -1 }).limit(1).next();
    const used = (await readUsage(inv, [claim.hostId])).get(claim.hostId) ?? emptyUsage();
    const freeMemory = host.allocatable.memoryMiB - used.memoryMiB;
    const freeVcpus = host.allocatable.vcpus - used.vcpus;
    const short: string[] = [];
    if (claim.memoryMiB > freeMemory)
      short.push(`needs ${claim.memoryMiB} MiB memory, ${freeMemory} MiB free`);
    if (claim.vcpus > freeVcpus) short.push(`needs ${claim.vcpus} vCPUs, ${freeVcpus} free`);
    if (short.length > 0) throw new InsufficientCapacityError(`vm ${claim.vmId}`, { [claim.hostId]: short });

    const seq = (newest?.seq ?? 0) + 1;
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
      return doc;
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === 11000) || attempt >= 100) throw err;
      // Another claim took this number: back off a little and re-read everything.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt + 1, 5)));
    }
  }
}

/** Releases one claim. Idempotent: releasing twice, or a claim that is gone, does nothing. */
export async function releaseReservation(inv: Inventory, reservationId: string): Promise<void> {
  const doc = await inv.reservations.findOne({ _id: reservationId });
  if (!doc || doc.state === 'released') return;
  const newest = await inv.reservations.find({ hostId: doc.hostId }).sort({ seq: -1 }).limit(1).next();
  if (newest && newest._id === doc._id) {
    await inv.reservations.updateOne(
      { _id: doc._id },
      { $set: { state: 'released', updatedAt: new Date() }, $inc: { revision: 1 } },
    );
  } else {
    await inv.reservations.deleteOne({ _id: doc._id });
  }
}

/** Releases every active claim a workflow holds (compensation, commit). */
export async function releaseOwnedReservations(inv: Inventory, owner: string): Promise<number> {
  const owned = await inv.reservations.find({ owner, state: 'active' }).toArray();
  for (const r of owned) await releaseReservation(inv, r._id);
  return owned.length;
}
