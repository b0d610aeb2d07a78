import { allocateNic, releaseNicClaims } from './networks';
import type { NicConfig, NicRequest } from '../domain/network';
import { DEFAULT_CPU_BASELINE } from '../domain/cpu';
import type { ProvisionSpec } from '../domain/requests';
import { MongoServerError, type Filter } from 'mongodb';
import { sumBytes } from '../domain/bytes';
import { NotFoundError, ValidationError } from '../domain/errors';
import type { Inventory } from './db';
import { inProjects } from './pages';
import { withinQuota } from './quotas';
import { vmSchema, type VmDoc, type VmState } from './schemas';

/*
 * A VM document is written by the workflow that holds `vm/<vmId>` (Temporal runs one at a time),
 * and by the reconciler and HA from what hosts report: every write goes through updateVm's
 * revision claim, so none overwrites a change it did not see. The id is claimed by a unique
 * insert.
 */

export async function getVm(inv: Inventory, vmId: string): Promise<VmDoc> {
  const vm = await inv.vms.findOne({ _id: vmId });
  if (!vm) throw new NotFoundError('vm', vmId);
  return vm;
}

/** Claims the VM id with a `creating` document; a taken id is a validation error. */
export async function insertCreatingVm(
  inv: Inventory,
  vm: Pick<
    VmDoc,
    '_id' | 'image' | 'memoryMiB' | 'vcpus' | 'labels' | 'createdByRun' | 'guest' | 'project' | 'diskBytes'
  >,
): Promise<VmDoc> {
  const now = new Date();
  const doc = vmSchema.parse({
    ...vm,
    createdAt: now,
    updatedAt: now,
    revision: 1,
    state: 'creating',
    host: null,
    diskPath: '',
  });
  try {
    await inv.vms.insertOne(doc);
  } catch (err) {
    if (err instanceof MongoServerError && err.code === 11000) {
      throw new ValidationError('vmId', `a VM named "${vm._id}" already exists`);
    }
    throw err;
  }
  return doc;
}

/**
 * Claims the VM id for one workflow run, with its disks' sizes (`diskBytes`, root first).
 * Idempotent for that run, so a retried first step finds its own claim instead of reporting the
 * id as taken.
 */
export async function claimVmIdForRun(
  inv: Inventory,
  spec: Pick<ProvisionSpec, 'vmId' | 'image' | 'memoryMiB' | 'vcpus' | 'labels' | 'guest' | 'project'>,
  diskBytes: number[],
  runId: string,
): Promise<void> {
  const existing = await inv.vms.findOne({ _id: spec.vmId });
  if (existing?.state === 'creating' && existing.createdByRun === runId) return;
  const { vmId, image, memoryMiB, vcpus, labels, guest, project } = spec;
  // A new VM takes its place in its project's quota as it is recorded (inventory/quotas.ts).
  const usage = { project, vmId, vcpus, memoryMiB, diskBytes: sumBytes(diskBytes) };
  await withinQuota(inv, usage, runId, () =>
    insertCreatingVm(inv, {
      _id: vmId,
      image,
      memoryMiB,
      vcpus,
      labels,
      guest,
      createdByRun: runId,
      project,
      diskBytes,
    }),
  );
}

/**
 * Writes a VM's document as its next revision. Writers race here despite the one-workflow rule:
 * the reconciler and HA act on a VM from what a host reported a moment ago. FerretDB applies an
 * update as read-then-replace, so a revision in the filter would not stop two writers that read
 * the same revision (and would make it scan): each writer first claims `<vmId>@<revision + 1>`
 * by a unique insert, and only the one that got it writes.
 *
 * With `ifRevision`, the write happens only if the VM is still at that revision (it has not
 * changed since the caller decided): returns false otherwise. Without it, a lost claim is
 * retried on the newer revision.
 */
export async function updateVm(
  inv: Inventory,
  vmId: string,
  set: Partial<
    Pick<
      VmDoc,
      | 'state'
      | 'host'
      | 'diskPath'
      | 'stateReason'
      | 'migration'
      | 'migratedBy'
      | 'ha'
      | 'guest'
      | 'diskBytes'
    >
  >,
  opts: { ifRevision?: number } = {},
): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const current = await inv.vms.findOne({ _id: vmId }, { projection: { revision: 1 } });
    if (!current) throw new NotFoundError('vm', vmId);
    if (opts.ifRevision !== undefined && current.revision !== opts.ifRevision) return false;
    const next = current.revision + 1;
    try {
      await inv.vmWrites.insertOne({ _id: `${vmId}@${next}`, vmId, revision: next, at: new Date() });
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === 11000)) throw err;
      if (opts.ifRevision !== undefined) return false;
      await dropAbandonedClaim(inv, vmId, next);
      continue;
    }
    // The claim makes this write the only one of revision `next`, provided nobody wrote past
    // the revision read above (a claim is deleted once the revision after it is written, so a
    // writer with a stale read could win it again): read once more. Then the write goes by `_id`
    // alone, the one filter FerretDB looks up rather than scans: a revision in the filter made
    // every VM write scan the collection (400 ms a write at 2,000 VMs, on its one writer).
    const now = await inv.vms.findOne({ _id: vmId }, { projection: { revision: 1 } });
    if (now?.revision !== current.revision) {
      await inv.vmWrites.deleteOne({ _id: `${vmId}@${next}` });
      if (!now) throw new NotFoundError('vm', vmId);
      if (opts.ifRevision !== undefined) return false;
      continue;
    }
    await inv.vms.updateOne({ _id: vmId }, { $set: { ...set, revision: next, updatedAt: new Date() } });
    // The claim before this one can never be won again by a current reader. Deleted by its
    // _id: FerretDB scans a whole collection for any other filter.
    await inv.vmWrites.deleteOne({ _id: `${vmId}@${current.revision}` });
    return true;
  }
  throw new Error(`vm ${vmId}: could not write it after 50 attempts (another writer keeps winning)`);
}

/** A claim its writer never used (it died between claim and write) stops nobody for long. */
const ABANDONED_CLAIM_MS = 30_000;

async function dropAbandonedClaim(inv: Inventory, vmId: string, revision: number): Promise<void> {
  const claim = await inv.vmWrites.findOne({ _id: `${vmId}@${revision}` });
  if (claim && Date.now() - claim.at.getTime() > ABANDONED_CLAIM_MS)
    await inv.vmWrites.deleteOne({ _id: claim._id, at: claim.at });
  else await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
}

export async function setVmState(
  inv: Inventory,
  vmId: string,
  state: VmState,
  reason?: string,
): Promise<void> {
  await updateVm(inv, vmId, { state, stateReason: reason ?? '' });
}

/**
 * A new VM's NICs (a create or a restore): a MAC and an address on each network, recorded on
 * its `creating` document. A claim that fails (no such network, the address taken, the pool
 * exhausted; the field named) forgets the VM again with every claim it made, so a refused
 * request leaves nothing behind.
 */
export async function allocateNewVmNics(
  inv: Inventory,
  vmId: string,
  requests: NicRequest[],
): Promise<NicConfig[]> {
  try {
    const nics: NicConfig[] = [];
    for (const [i, r] of requests.entries())
      nics.push(await allocateNic(inv, vmId, r, i, { network: `nics.${i}.network`, ip: `nics.${i}.ip` }));
    await inv.vms.updateOne({ _id: vmId }, { $set: { 'guest.nics': nics } });
    return nics;
  } catch (err) {
    await deleteVmDoc(inv, vmId);
    throw err;
  }
}

/** Forgets a VM: its document, its write claims, and the addresses and MACs it held. */
export async function deleteVmDoc(inv: Inventory, vmId: string): Promise<void> {
  await inv.vms.deleteOne({ _id: vmId });
  await inv.vmWrites.deleteMany({ vmId });
  await releaseNicClaims(inv, vmId);
}

export function listVms(inv: Inventory, filter: { host?: string } = {}): Promise<VmDoc[]> {
  return inv.vms
    .find(filter.host ? { host: filter.host } : {})
    .sort({ _id: 1 })
    .toArray();
}

/**
 * One page of VMs in id order: those after `after`, at most `limit`, of the given projects only
 * (`all`: every project; VMs made before projects existed are in the default one). The filter is
 * in the query, so a page is full whenever more VMs of those projects follow.
 */
export function pageOfVms(
  inv: Inventory,
  page: { after?: string; limit: number; projects: string[] | 'all' },
): Promise<VmDoc[]> {
  const filter: Filter<VmDoc> = {
    ...(page.after ? { _id: { $gt: page.after } } : {}),
    ...inProjects('project', page.projects),
  };
  return inv.vms.find(filter).sort({ _id: 1 }).limit(page.limit).toArray();
}

/** The CPU model a VM runs with: its cluster's baseline when created (older VMs: qemu64). */
export function vmCpuModel(vm: Pick<VmDoc, 'guest'>): string {
  return vm.guest?.cpuModel ?? DEFAULT_CPU_BASELINE;
}
