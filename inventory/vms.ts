import { DEFAULT_CPU_BASELINE } from '../domain/cpu';
import type { ProvisionSpec } from '../domain/requests';
import { MongoServerError } from 'mongodb';
import { NotFoundError, ValidationError } from '../domain/errors';
import type { Inventory } from './db';
import { vmSchema, type VmDoc, type VmState } from './schemas';

/*
 * A VM document is written only by the workflow that holds `vm/<vmId>`, and Temporal runs one
 * such workflow at a time, so these read-modify-writes are serialized without a lock. The id
 * itself is claimed by a unique insert.
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

export async function updateVm(
  inv: Inventory,
  vmId: string,
  set: Partial<Pick<VmDoc, 'state' | 'host' | 'diskPath' | 'stateReason' | 'migration'>>,
): Promise<void> {
  const res = await inv.vms.updateOne(
    { _id: vmId },
    { $set: { ...set, updatedAt: new Date() }, $inc: { revision: 1 } },
  );
  if (res.matchedCount === 0) throw new NotFoundError('vm', vmId);
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
