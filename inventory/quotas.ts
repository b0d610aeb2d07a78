import { MongoServerError } from 'mongodb';
import { DEFAULT_PROJECT } from '../domain/access';
import { sumBytes } from '../domain/bytes';
import { parseInput, ValidationError } from '../domain/errors';
import {
  quotaSchema,
  quotaShortfall,
  QuotaExceededError,
  type Quota,
  type QuotaUsage,
  type VmUsage,
} from '../domain/quota';
import { SCAN_BATCH, type Inventory } from './db';
import type { VmDoc } from './schemas';

export interface ProjectQuotaDoc extends Quota {
  _id: string;
  updatedAt: Date;
}

/**
 * A claim on a project's quota by one VM, new or growing, numbered per project (`<project>-q<n>`)
 * as capacity claims are numbered per host (inventory/reservations.ts): claim n is inserted only
 * after every claim below n was read, so of two racing requests one sees the other. It holds
 * the VM's whole usage as it will be recorded, so a VM with a live claim counts by its claim.
 */
export interface QuotaClaimDoc extends VmUsage {
  _id: string;
  project: string;
  seq: number;
  vmId: string;
  owner: string;
  state: 'active' | 'released';
  at: Date;
}

/** A VM's usage of its project's quota, and who it is. */
export type QuotaSubject = VmUsage & { project: string; vmId: string };

/**
 * An active claim older than this no longer counts: its request's step ended long ago (the step
 * claims and releases within one activity), so the claim outlived a lost process.
 */
const CLAIM_TTL_MS = 10 * 60_000;

export async function setQuota(inv: Inventory, project: string, input: unknown): Promise<ProjectQuotaDoc> {
  const quota = parseInput(quotaSchema, input, 'quota');
  const doc = { _id: project, ...quota, updatedAt: new Date() };
  await inv.projectQuotas.replaceOne({ _id: project }, doc, { upsert: true });
  return doc;
}

export async function getQuota(inv: Inventory, project: string): Promise<Quota | undefined> {
  const doc = await inv.projectQuotas.findOne({ _id: project });
  if (!doc) return undefined;
  const { _id: _project, updatedAt: _at, ...quota } = doc;
  return quota;
}

type UsageFields = Pick<VmDoc, '_id' | 'project' | 'vcpus' | 'memoryMiB' | 'diskBytes' | 'image'> & {
  guest?: { dataDisks?: number[] };
};

/**
 * Each of a VM's disks' provisioned sizes, root first. A VM recorded before disk quotas has no
 * record: its root disk was made at its image's size, its data disks at their creation sizes.
 */
function disksOf(vm: UsageFields, imageBytes: (image: string) => number): number[] {
  return vm.diskBytes ?? [imageBytes(vm.image), ...(vm.guest?.dataDisks ?? [])];
}

/** Image sizes by name, read only when some VM needs them (one without a disk record). */
async function imageSizes(inv: Inventory, needed: boolean): Promise<(image: string) => number> {
  if (!needed) return () => 0;
  const images = await inv.images
    .find({})
    .project<{ _id: string; virtualSizeBytes: number }>({ virtualSizeBytes: 1 })
    .toArray();
  const sizes = new Map(images.map((i) => [i._id, i.virtualSizeBytes]));
  return (image) => sizes.get(image) ?? 0;
}

/** One VM's disks' provisioned sizes, root first, from its record. */
export async function recordedDisks(inv: Inventory, vm: UsageFields): Promise<number[]> {
  return disksOf(vm, await imageSizes(inv, !vm.diskBytes));
}

/** A project's quota (no limit where absent) and what its VMs hold of it. */
export async function projectReport(inv: Inventory, project: string) {
  return { project, quota: (await getQuota(inv, project)) ?? {}, usage: await projectUsage(inv, project) };
}

/** A disk's growth as the quota sees it: the VM's disks and usage before, and after when it grows. */
export type DiskGrowth =
  | { before: number[]; after?: undefined }
  | { before: number[]; after: number[]; subject: QuotaSubject; was: VmUsage };

/**
 * Disk `disk` of `vm` grown to `sizeBytes`, from the VM's record. A size not above the record
 * grows nothing (the host refuses a shrink, naming both sizes); a disk the VM lacks is refused.
 */
export async function diskGrowth(
  inv: Inventory,
  vm: UsageFields,
  disk: number,
  sizeBytes: number,
): Promise<DiskGrowth> {
  const before = await recordedDisks(inv, vm);
  if (disk >= before.length)
    throw new ValidationError(
      'disk',
      `vm ${vm._id} has no disk ${disk}: it has ${before.length} (0 is the root disk)`,
    );
  if (sizeBytes <= before[disk]) return { before };
  const after = before.map((d, i) => (i === disk ? sizeBytes : d));
  const usage = (d: number[]) => ({ vcpus: vm.vcpus, memoryMiB: vm.memoryMiB, diskBytes: sumBytes(d) });
  const subject = { project: vm.project ?? DEFAULT_PROJECT, vmId: vm._id, ...usage(after) };
  return { before, after, subject, was: usage(before) };
}

/**
 * What a project's VMs hold, plus the claims of VMs not recorded yet or growing, leaving out
 * `except` (the VM a request is about). Claims are read first: a claim is released only once
 * its VM's change is recorded, so in this order a VM is counted at least once, at its larger
 * usage; one with a live claim is counted by its claim only.
 */
export async function projectUsage(
  inv: Inventory,
  project: string,
  opts: { claims?: QuotaClaimDoc[]; except?: string } = {},
): Promise<QuotaUsage> {
  const live = (opts.claims ?? (await inv.quotaClaims.find({ project }).toArray())).filter(counts);
  const claimed = new Set(live.map((c) => c.vmId));
  const vms = (
    await inv.vms
      .find({}, { batchSize: SCAN_BATCH })
      .project<UsageFields>({
        project: 1,
        vcpus: 1,
        memoryMiB: 1,
        diskBytes: 1,
        image: 1,
        'guest.dataDisks': 1,
      })
      .toArray()
  ).filter((v) => (v.project ?? DEFAULT_PROJECT) === project && !claimed.has(v._id));
  const imageBytes = await imageSizes(
    inv,
    vms.some((v) => !v.diskBytes),
  );
  const used: QuotaUsage = { vms: 0, vcpus: 0, memoryMiB: 0, diskBytes: 0 };
  for (const u of [
    ...vms.map((v) => ({
      vmId: v._id,
      vcpus: v.vcpus,
      memoryMiB: v.memoryMiB,
      diskBytes: sumBytes(disksOf(v, imageBytes)),
    })),
    ...live.map((c) => ({ ...c, diskBytes: c.diskBytes ?? 0 })),
  ]) {
    if (u.vmId === opts.except) continue;
    used.vms += 1;
    used.vcpus += u.vcpus;
    used.memoryMiB += u.memoryMiB;
    used.diskBytes += u.diskBytes;
  }
  return used;
}

const counts = (c: QuotaClaimDoc) => c.state === 'active' && Date.now() - c.at.getTime() < CLAIM_TTL_MS;

/** Throws QuotaExceededError when `vm` does not fit in `quota` beside the project's `others`. */
function assertRoom(quota: Quota, others: QuotaUsage, vm: QuotaSubject, before?: VmUsage): void {
  const short = quotaShortfall(quota, others, vm, before);
  if (short.length) throw new QuotaExceededError(vm.project, vm.vmId, short);
}

/**
 * Refuses at once a VM (new, or with `before` a change to one) its project's quota has no room
 * for. Not the arbiter: two requests can both pass here; withinQuota's claim decides between
 * them. The API calls it to answer 409 instead of starting an operation bound to fail.
 */
export async function checkQuotaRoom(inv: Inventory, vm: QuotaSubject, before?: VmUsage): Promise<void> {
  const quota = await getQuota(inv, vm.project);
  if (quota) assertRoom(quota, await projectUsage(inv, vm.project, { except: vm.vmId }), vm, before);
}

/**
 * Records a VM's new usage (`record`: a new VM, or a grown disk, given `before`) only if its
 * project's quota has room, arbitrated against every concurrent request by a numbered claim;
 * throws QuotaExceededError otherwise. A project with no quota records at once. Idempotent per
 * `owner`: a retried step finds its own claim.
 */
export async function withinQuota<T>(
  inv: Inventory,
  vm: QuotaSubject,
  owner: string,
  record: () => Promise<T>,
  before?: VmUsage,
): Promise<T> {
  const quota = await getQuota(inv, vm.project);
  if (!quota) return record();
  let claim: QuotaClaimDoc | undefined;
  for (let attempt = 0; !claim; attempt++) {
    const claims = await inv.quotaClaims.find({ project: vm.project }).toArray();
    claim = claims.find((c) => c.owner === owner && counts(c));
    if (claim) break;
    assertRoom(quota, await projectUsage(inv, vm.project, { claims, except: vm.vmId }), vm, before);
    const seq = Math.max(0, ...claims.map((c) => c.seq)) + 1;
    const doc: QuotaClaimDoc = {
      _id: `${vm.project}-q${seq}`,
      seq,
      owner,
      state: 'active',
      at: new Date(),
      project: vm.project,
      vmId: vm.vmId,
      vcpus: vm.vcpus,
      memoryMiB: vm.memoryMiB,
      diskBytes: vm.diskBytes,
    };
    try {
      await inv.quotaClaims.insertOne(doc);
      claim = doc;
    } catch (err) {
      if (!(err instanceof MongoServerError && err.code === 11000) || attempt >= 100) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * Math.min(attempt + 1, 5)));
    }
  }
  try {
    return await record();
  } finally {
    // Recorded, the VM counts by itself; not recorded, it never will. Either way the claim is done.
    await inv.quotaClaims.updateOne({ _id: claim._id }, { $set: { state: 'released' } });
    await dropReleasedBelow(inv, vm.project, claim.seq);
  }
}

/**
 * Deletes a project's released claims numbered below `seq`: they count for nothing, and the
 * newer claim keeps the numbers from being reused. By `_id` (FerretDB's one indexed lookup).
 */
async function dropReleasedBelow(inv: Inventory, project: string, seq: number): Promise<void> {
  const old = await inv.quotaClaims
    .find({ project, state: 'released' })
    .project<{ _id: string; seq: number }>({ seq: 1 })
    .toArray();
  for (const c of old) if (c.seq < seq) await inv.quotaClaims.deleteOne({ _id: c._id });
}
