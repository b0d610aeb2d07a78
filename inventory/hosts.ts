import { NotFoundError } from '../domain/errors';
import type { HostDoc } from './schemas';
import type { Inventory } from './db';

export type HostRegistration = Pick<
  HostDoc,
  'facts' | 'allocatable' | 'patchLevel' | 'agent' | 'migrationPorts' | 'migrationAddress' | 'cluster'
>;

/**
 * Registers a host or refreshes what its agent reports. Only the host's own agent writes
 * these fields, so a plain upsert is safe on FerretDB; operator-owned fields (maintenance,
 * labels) are set only when the document is first created. An agent that registers is back:
 * a fence or a wait for an operator from its host's loss no longer applies.
 */
export async function registerHost(inv: Inventory, hostId: string, reg: HostRegistration): Promise<HostDoc> {
  const now = new Date();
  await inv.hosts.updateOne(
    { _id: hostId },
    {
      $set: { ...reg, state: 'up', needsOperator: '', fencedAt: null, updatedAt: now },
      // Agents once registered their own fence command; fences are the controller's now.
      $unset: { fence: '' },
      $setOnInsert: {
        createdAt: now,
        maintenance: false,
        maintenanceState: 'none',
        evacuatedVms: [],
        labels: {},
      },
      $inc: { revision: 1 },
    },
    { upsert: true },
  );
  const doc = await inv.hosts.findOne({ _id: hostId });
  if (!doc) throw new Error(`host ${hostId} vanished right after registration`);
  return doc;
}

/** The agent's liveness signal, written at every facts interval. */
export async function touchHostHeartbeat(inv: Inventory, hostId: string): Promise<void> {
  const now = new Date();
  await inv.hosts.updateOne(
    { _id: hostId },
    { $set: { 'agent.heartbeatAt': now, state: 'up', updatedAt: now }, $inc: { revision: 1 } },
  );
}

/** Marks a host down when its agent stops cleanly. */
export async function markHostDown(inv: Inventory, hostId: string): Promise<void> {
  await inv.hosts.updateOne(
    { _id: hostId },
    { $set: { state: 'down', updatedAt: new Date() }, $inc: { revision: 1 } },
  );
}

/** Marks a host whose agent does not answer (a missed check, or a lost host HA takes over). */
export async function markHostUnreachable(inv: Inventory, hostId: string): Promise<void> {
  await inv.hosts.updateOne(
    { _id: hostId },
    { $set: { state: 'unreachable', updatedAt: new Date() }, $inc: { revision: 1 } },
  );
}

/**
 * Changes a host's maintenance state. Only the `host/<hostId>` workflow calls this, and Temporal
 * runs one such workflow at a time, so the write needs no lock.
 */
export async function setHostMaintenance(
  inv: Inventory,
  hostId: string,
  set: Partial<Pick<HostDoc, 'maintenance' | 'maintenanceState' | 'maintenanceReason' | 'evacuatedVms'>>,
): Promise<void> {
  const res = await inv.hosts.updateOne(
    { _id: hostId },
    { $set: { ...set, updatedAt: new Date() }, $inc: { revision: 1 } },
  );
  if (res.matchedCount === 0) throw new NotFoundError('host', hostId);
}

export function listHosts(inv: Inventory): Promise<HostDoc[]> {
  return inv.hosts.find({}).sort({ _id: 1 }).toArray();
}
