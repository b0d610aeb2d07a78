import { randomInt, randomUUID } from 'node:crypto';
import { MongoServerError } from 'mongodb';
import { InvalidStateError, NotFoundError, parseInput, ValidationError } from '../domain/errors';
import {
  conflictWith,
  intToIpv4,
  ipv4ToInt,
  macFor,
  networkSpecSchema,
  nicConfig,
  poolRange,
  type NetworkSpec,
  type NicConfig,
  type NicRequest,
} from '../domain/network';
import type { Inventory } from './db';
import type { NetworkDoc, NicClaimDoc, VmDoc } from './schemas';

const isDuplicate = (err: unknown) => err instanceof MongoServerError && err.code === 11000;

/**
 * Records a network after checking it against the others: no two networks share addresses,
 * and a VLAN id is one network per uplink. The name is claimed by a unique insert.
 */
export async function createNetwork(inv: Inventory, input: unknown): Promise<NetworkDoc> {
  const spec = parseInput(networkSpecSchema, input, '');
  // Checked and inserted under one lease: two concurrent creates of overlapping networks would
  // otherwise both find the other absent (only the name is a unique key).
  return withNetworksLease(inv, async () => {
    const others = (await inv.networks.find({}).toArray()).map((n) => n.spec);
    const conflict = conflictWith(spec, others);
    if (conflict) throw new ValidationError(conflict.field, conflict.message);
    const now = new Date();
    const doc: NetworkDoc = { _id: spec.name, createdAt: now, updatedAt: now, revision: 1, spec };
    try {
      await inv.networks.insertOne(doc);
    } catch (err) {
      if (isDuplicate(err)) throw new ValidationError('name', `network ${spec.name} exists`);
      throw err;
    }
    return doc;
  });
}

const NETWORKS_LEASE = 'lease/networks';
/** A lease older than this was left by a writer that died holding it. */
const STALE_LEASE_MS = 30_000;

/**
 * Runs `body` while holding the networks lease, taken by a unique insert (FerretDB has no
 * transactions, and its conditional updates are not locks). Waits for another holder up to
 * 10 s; a lease left by a writer that died is taken over after 30 s.
 */
async function withNetworksLease<T>(inv: Inventory, body: () => Promise<T>): Promise<T> {
  const owner = randomUUID();
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = new Date();
    try {
      await inv.leases.insertOne({
        _id: NETWORKS_LEASE,
        resource: 'networks',
        owner,
        epoch: 1,
        createdAt: now,
        updatedAt: now,
        revision: 1,
      });
      break;
    } catch (err) {
      if (!isDuplicate(err)) throw err;
    }
    const held = await inv.leases.findOne({ _id: NETWORKS_LEASE });
    if (held && now.getTime() - held.createdAt.getTime() > STALE_LEASE_MS)
      await inv.leases.deleteOne({ _id: NETWORKS_LEASE, owner: held.owner });
    else if (Date.now() > deadline)
      throw new InvalidStateError(
        `networks are being changed by another writer (${held?.owner ?? '?'}); try again`,
      );
    else await new Promise((r) => setTimeout(r, 20 + randomInt(80)));
  }
  try {
    return await body();
  } finally {
    await inv.leases.deleteOne({ _id: NETWORKS_LEASE, owner });
  }
}

export async function getNetwork(inv: Inventory, name: string): Promise<NetworkDoc> {
  const n = await inv.networks.findOne({ _id: name });
  if (!n) throw new NotFoundError('network', name);
  return n;
}

/** Every network, by name. */
export async function listNetworks(inv: Inventory): Promise<NetworkDoc[]> {
  return inv.networks.find({}).sort({ _id: 1 }).toArray();
}

/**
 * A network and the addresses its VMs hold. A VM `visible` does not let the reader see (another
 * project's) is not named: its address shows as held, by `(another project)`.
 */
export async function networkWithAddresses(
  inv: Inventory,
  name: string,
  visible?: (vm: Pick<VmDoc, '_id' | 'project'>) => boolean,
) {
  const n = await getNetwork(inv, name);
  const held = await inv.nicClaims.find({ network: name, kind: 'ip' }).toArray();
  const projects = visible
    ? new Map(
        (
          await inv.vms
            .find({ _id: { $in: [...new Set(held.map((c) => c.vmId))] } })
            .project<Pick<VmDoc, '_id' | 'project'>>({ project: 1 })
            .toArray()
        ).map((v) => [v._id, v]),
      )
    : undefined;
  const named = (vmId: string) => {
    const vm = projects?.get(vmId);
    return !visible || (vm !== undefined && visible(vm)) ? vmId : '(another project)';
  };
  return { ...n, addresses: held.map((c) => ({ address: c._id.split('/').pop()!, vm: named(c.vmId) })) };
}

/** Deletes a network no VM uses; one in use is refused, naming its VMs. */
export async function deleteNetwork(inv: Inventory, name: string): Promise<void> {
  await getNetwork(inv, name);
  const users = [...new Set((await inv.nicClaims.find({ network: name }).toArray()).map((c) => c.vmId))];
  if (users.length)
    throw new InvalidStateError(
      `network ${name} is in use by vm ${users.sort().join(', ')}: remove their NICs first`,
    );
  await inv.networks.deleteOne({ _id: name });
}

const ipClaimId = (network: string, ip: string) => `ip/${network}/${ip}`;

/**
 * Gives `vmId` an address on the network: the one it asked for (refused when taken, outside the
 * pool, or the gateway) or the lowest free one of the pool. Concurrent callers race on unique
 * inserts, so each address goes to exactly one VM, also on FerretDB. Idempotent per VM: a
 * retried call finds the address it already holds.
 */
export async function allocateAddress(
  inv: Inventory,
  req: { network: string; vmId: string; requested?: string; field?: string },
): Promise<string> {
  const field = req.field ?? 'ip';
  const net = await getNetwork(inv, req.network);
  const held = await inv.nicClaims.findOne({ kind: 'ip', network: req.network, vmId: req.vmId });
  if (held && (!req.requested || held._id === ipClaimId(req.network, req.requested)))
    return held._id.split('/').pop()!;
  const range = poolRange(net.spec);
  if (req.requested !== undefined) {
    const ip = ipv4ToInt(req.requested);
    if (ip === undefined) throw new ValidationError(field, `${req.requested} is not an IPv4 address`);
    if (ip < range.first || ip > range.last)
      throw new ValidationError(
        field,
        `${req.requested} is outside the pool of network ${req.network} (${describePool(net.spec)})`,
      );
    if (ip === range.gateway)
      throw new ValidationError(field, `${req.requested} is the gateway of network ${req.network}`);
    if (!(await claim(inv, ipClaimId(req.network, req.requested), 'ip', req.network, req.vmId))) {
      const owner = await inv.nicClaims.findOne({ _id: ipClaimId(req.network, req.requested) });
      throw new ValidationError(
        field,
        `${req.requested} on network ${req.network} is taken by vm ${owner?.vmId ?? '?'}`,
      );
    }
    return req.requested;
  }
  for (;;) {
    const taken = new Set(
      (await inv.nicClaims.find({ kind: 'ip', network: req.network }).toArray()).map((c) => c._id),
    );
    let candidate: string | undefined;
    for (let ip = range.first; ip <= range.last && !candidate; ip++) {
      const id = ipClaimId(req.network, intToIpv4(ip));
      if (ip !== range.gateway && !taken.has(id)) candidate = intToIpv4(ip);
    }
    if (!candidate)
      throw new ValidationError(
        field,
        `network ${req.network} has no free address (pool ${describePool(net.spec)}, ${taken.size} in use)`,
      );
    // Lost the race for this one: read what is taken again and take the next.
    if (await claim(inv, ipClaimId(req.network, candidate), 'ip', req.network, req.vmId)) return candidate;
  }
}

/**
 * A MAC no other NIC has: three random octets after virtflow's prefix, claimed by a unique
 * insert. Idempotent per VM and network: a retried call finds the MAC it already holds.
 */
export async function allocateMac(inv: Inventory, req: { network: string; vmId: string }): Promise<string> {
  const held = await inv.nicClaims.findOne({ kind: 'mac', network: req.network, vmId: req.vmId });
  if (held) return held._id.slice('mac/'.length);
  for (;;) {
    const mac = macFor(randomInt(0x1000000));
    if (await claim(inv, `mac/${mac}`, 'mac', req.network, req.vmId)) return mac;
  }
}

/**
 * Claims a MAC and an address for one NIC and says how it is configured. `fields` name the
 * request's fields in errors (`nics.1.ip` for a create, `ip` for a NIC added later).
 */
export async function allocateNic(
  inv: Inventory,
  vmId: string,
  request: NicRequest,
  slot: number,
  fields: { network: string; ip: string },
): Promise<NicConfig> {
  const net = await inv.networks.findOne({ _id: request.network });
  if (!net)
    throw new ValidationError(
      fields.network,
      `no network named "${request.network}" (see \`virtflow network list\`)`,
    );
  const ip = await allocateAddress(inv, {
    network: request.network,
    vmId,
    requested: request.ip,
    field: fields.ip,
  });
  return nicConfig(net.spec, await allocateMac(inv, { network: request.network, vmId }), ip, slot);
}

/**
 * Gives back the addresses and MACs a VM holds: all of them (it was deleted, or its create was
 * undone), or those on `networks` (NICs removed, or not added after all).
 */
export async function releaseNicClaims(inv: Inventory, vmId: string, networks?: string[]): Promise<number> {
  const held = (await inv.nicClaims.find({ vmId }).toArray()).filter(
    (c) => !networks || networks.includes(c.network),
  );
  for (const c of held) await inv.nicClaims.deleteOne({ _id: c._id });
  return held.length;
}

async function claim(
  inv: Inventory,
  _id: string,
  kind: NicClaimDoc['kind'],
  network: string,
  vmId: string,
): Promise<boolean> {
  try {
    await inv.nicClaims.insertOne({ _id, kind, network, vmId, at: new Date() });
    return true;
  } catch (err) {
    if (!isDuplicate(err)) throw err;
    // A retried call of the same VM finds its own claim.
    return (await inv.nicClaims.findOne({ _id }))?.vmId === vmId;
  }
}

function describePool(spec: NetworkSpec): string {
  const r = poolRange(spec);
  return `${intToIpv4(r.first)}-${intToIpv4(r.last)}`;
}
