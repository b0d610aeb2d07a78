import { MongoServerError } from 'mongodb';
import { DEFAULT_PROJECT } from '../domain/access';
import { parseInput } from '../domain/errors';
import {
  quotaSchema,
  quotaShortfall,
  QuotaExceededError,
  type Quota,
  type QuotaUsage,
} from '../domain/quota';
import { SCAN_BATCH, type Inventory } from './db';

export interface ProjectQuotaDoc extends Quota {
  _id: string;
  updatedAt: Date;
}

/**
 * A claim on a project's quota by one new VM, numbered per project (`<project>-q<n>`) as
 * capacity claims are numbered per host (inventory/reservations.ts): claim n is inserted only
 * after every claim below n was read, so of two racing creates one sees the other.
 */
export interface QuotaClaimDoc {
  _id: string;
  project: string;
  seq: number;
  vmId: string;
  owner: string;
  vcpus: number;
  memoryMiB: number;
  state: 'active' | 'released';
  at: Date;
}

/**
 * An active claim older than this no longer counts: its create's first step ended long ago
 * (the step claims and releases within one activity), so the claim outlived a lost process.
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

/**
 * What a project's VMs hold, plus the claims of VMs not recorded yet. Claims are read first: a
 * claim is released only once its VM is recorded, so in this order a VM is counted at least
 * once; one with a live claim is counted by its claim only.
 */
export async function projectUsage(
  inv: Inventory,
  project: string,
  claims?: QuotaClaimDoc[],
): Promise<QuotaUsage> {
  const live = (claims ?? (await inv.quotaClaims.find({ project }).toArray())).filter(counts);
  const claimed = new Set(live.map((c) => c.vmId));
  const vms = await inv.vms
    .find({}, { batchSize: SCAN_BATCH })
    .project<{ _id: string; project?: string; vcpus: number; memoryMiB: number }>({
      project: 1,
      vcpus: 1,
      memoryMiB: 1,
    })
    .toArray();
  const used: QuotaUsage = { vms: 0, vcpus: 0, memoryMiB: 0 };
  for (const u of [
    ...vms.filter((v) => (v.project ?? DEFAULT_PROJECT) === project && !claimed.has(v._id)),
    ...live,
  ]) {
    used.vms += 1;
    used.vcpus += u.vcpus;
    used.memoryMiB += u.memoryMiB;
  }
  return used;
}

const counts = (c: QuotaClaimDoc) => c.state === 'active' && Date.now() - c.at.getTime() < CLAIM_TTL_MS;

/** Throws QuotaExceededError when `vm` does not fit in `quota` beside what is `used`. */
function assertRoom(
  quota: Quota,
  used: QuotaUsage,
  vm: { project: string; vmId: string; vcpus: number; memoryMiB: number },
): void {
  const short = quotaShortfall(quota, used, vm);
  if (short.length) throw new QuotaExceededError(vm.project, vm.vmId, short);
}

/**
 * Refuses at once a VM its project's quota has no room for. Not the arbiter: two creates can
 * both pass here; withinQuota's claim decides between them. The API calls it to answer 409
 * instead of starting an operation bound to fail.
 */
export async function checkQuotaRoom(
  inv: Inventory,
  vm: { project: string; vmId: string; vcpus: number; memoryMiB: number },
): Promise<void> {
  const quota = await getQuota(inv, vm.project);
  if (quota) assertRoom(quota, await projectUsage(inv, vm.project), vm);
}

/**
 * Records a new VM (`record`) only if its project's quota has room, arbitrated against every
 * concurrent create by a numbered claim; throws QuotaExceededError otherwise. A project with no
 * quota records at once. Idempotent per `owner`: a retried step finds its own claim.
 */
export async function withinQuota<T>(
  inv: Inventory,
  vm: { project: string; vmId: string; vcpus: number; memoryMiB: number },
  owner: string,
  record: () => Promise<T>,
): Promise<T> {
  const quota = await getQuota(inv, vm.project);
  if (!quota) return record();
  let claim: QuotaClaimDoc | undefined;
  for (let attempt = 0; !claim; attempt++) {
    const claims = await inv.quotaClaims.find({ project: vm.project }).toArray();
    claim = claims.find((c) => c.owner === owner && counts(c));
    if (claim) break;
    assertRoom(quota, await projectUsage(inv, vm.project, claims), vm);
    const seq = Math.max(0, ...claims.map((c) => c.seq)) + 1;
    const doc: QuotaClaimDoc = {
      _id: `${vm.project}-q${seq}`,
      seq,
      owner,
      state: 'active',
      at: new Date(),
      ...vm,
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
