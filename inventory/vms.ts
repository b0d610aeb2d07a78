import { DEFAULT_CPU_BASELINE } from '../domain/cpu';
import type { ProvisionSpec } from '../domain/requests';
import { MongoServerError } from 'mongodb';
import { NotFoundError, ValidationError } from '../domain/errors';
import type { Inventory } from './db';
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
  vm: Pick<VmDoc, '_id' | 'image' | 'memoryMiB' | 'vcpus' | 'labels' | 'createdByRun' | 'guest'>,
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
 * Claims the VM id for one workflow run. Idempotent for that run, so a retried first step finds
 * its own claim instead of reporting the id as taken.
 */
export async function claimVmIdForRun(
  inv: Inventory,
  spec: Pick<ProvisionSpec, 'vmId' | 'image' | 'memoryMiB' | 'vcpus' | 'labels' | 'guest'>,
  runId: string,
): Promise<void> {
  const existing = await inv.vms.findOne({ _id: spec.vmId });
  if (existing?.state === 'creating' && existing.createdByRun === runId) return;
  const { vmId, image, memoryMiB, vcpus, labels, guest } = spec;
  await insertCreatingVm(inv, { _id: vmId, image, memoryMiB, vcpus, labels, guest, createdByRun: runId });
}

/**
 * Writes a VM's document as its next revision. Writers race here despite the one-workflow rule:
 * the reconciler and HA act on a VM from what a host reported a moment ago. FerretDB applies an
 * update as read-then-replace, so a revision in the filter alone would not stop two writers that
 * read the same revision; each writer first claims `<vmId>@<revision + 1>` by a unique insert,
 * and only the one that got it writes.
 *
 * With `ifRevision`, the write happens only if the VM is still at that revision (it has not
 * changed since the caller decided): returns false otherwise. Without it, a lost claim is
 * retried on the newer revision.
 */
export async function updateVm(
  inv: Inventory,
  vmId: string,
  set: Partial<Pick<VmDoc, 'state' | 'host' | 'diskPath' | 'stateReason' | 'migration' | 'ha'>>,
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
    const res = await inv.vms.updateOne(
      { _id: vmId, revision: current.revision },
      { $set: { ...set, revision: next, updatedAt: new Date() } },
    );
    // The claim before this one can never be won again (every write is conditioned on its
    // revision). Deleted by its _id: FerretDB scans a whole collection for any other filter,
    // which at 5,000 VMs cost 100 ms of its one writer per VM write.
    await inv.vmWrites.deleteOne({ _id: `${vmId}@${current.revision}` });
    if (res.matchedCount === 1) return true;
    if (opts.ifRevision !== undefined) return false;
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

export async function deleteVmDoc(inv: Inventory, vmId: string): Promise<void> {
  await inv.vms.deleteOne({ _id: vmId });
  await inv.vmWrites.deleteMany({ vmId });
}

export function listVms(inv: Inventory, filter: { host?: string } = {}): Promise<VmDoc[]> {
  return inv.vms
    .find(filter.host ? { host: filter.host } : {})
    .sort({ _id: 1 })
    .toArray();
}

/** The CPU model a VM runs with: its cluster's baseline when created (older VMs: qemu64). */
export function vmCpuModel(vm: Pick<VmDoc, 'guest'>): string {
  return vm.guest?.cpuModel ?? DEFAULT_CPU_BASELINE;
}
