import type { Client } from '@temporalio/client';
import { auditOperations } from '../client/audit-operations';
import type { Config } from '../domain/config';
import { heartbeatFresh } from '../domain/liveness';
import { localQemuHost } from '../hypervisor/local-qemu-host';
import { readGuestLog, waitForFreshHeartbeat } from '../hypervisor/serial-log';
import type { Inventory } from '../inventory/db';
import { localHosts } from '../scripts/services/entry-points';
import type { ChaosModel } from './operations';

export interface Verdict {
  drift: { kind: string; subject: string; message: string }[];
  violations: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function poll(
  what: string,
  timeoutMs: number,
  check: () => Promise<string | undefined>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string | undefined;
  for (;;) {
    try {
      last = await check();
      if (last === undefined) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s: ${last}`);
    await sleep(1000);
  }
}

/** Waits until every agent heartbeats and no operation is open: the stack has settled. */
export async function settle(client: Client, inv: Inventory): Promise<void> {
  await poll('every host agent back', 180_000, async () => {
    const hosts = await inv.hosts.find({}).toArray();
    const now = Date.now();
    const down = localHosts
      .map((h) => hosts.find((d) => d._id === h.hostId))
      .filter((d) => !d || d.state !== 'up' || !heartbeatFresh(d.agent, now));
    return down.length ? `${down.length} agent(s) not heartbeating` : undefined;
  });
  await poll('every operation closed', 300_000, async () => {
    const open: string[] = [];
    for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' }))
      open.push(wf.workflowId);
    return open.length ? `still running: ${open.join(', ')}` : undefined;
  });
}

/**
 * The promises a chaos run checks once everything has settled: the reconciler finds no drift;
 * every VM the run created exists once, runs only where the inventory says, and a running one
 * heartbeats; nothing holds a reservation or a lease; no host was fenced; no migration is left
 * unsettled.
 */
export async function checkInvariants(
  client: Client,
  config: Config,
  inv: Inventory,
  model: ChaosModel,
): Promise<Verdict> {
  const violations: string[] = [];
  const pass = await (await auditOperations(client, config).run()).result();
  const drift: Verdict['drift'] = [];
  for (const [hostId, h] of Object.entries(pass.hosts)) {
    if ('error' in h) violations.push(`reconciling ${hostId} failed: ${h.error}`);
    else drift.push(...h.found.map((f) => ({ kind: f.kind, subject: f.subject, message: f.state })));
  }
  if ('error' in pass.fleet) violations.push(`reconciling the fleet records failed: ${pass.fleet.error}`);
  else drift.push(...pass.fleet.found.map((f) => ({ kind: f.kind, subject: f.subject, message: f.state })));
  for (const d of await inv.drift.find({ state: 'open' }).toArray())
    if (!drift.some((x) => x.subject === d.subject))
      drift.push({ kind: d.kind, subject: d.subject, message: d.message });
  if (drift.length) violations.push(`the reconciler found ${drift.length} drift(s)`);

  const docs = await inv.vms.find({}).toArray();
  const recorded = new Set(docs.map((v) => v._id));
  for (const id of model.vms)
    if (!recorded.has(id)) violations.push(`vm ${id} was lost: created, never deleted, not in the inventory`);
  for (const id of recorded)
    if (!model.vms.has(id))
      violations.push(`vm ${id} is in the inventory but no completed operation made it`);

  const qemu = localHosts.map((h) => [h.hostId, localQemuHost(config.dataDir, h.hostId)] as const);
  const where = new Map<string, string[]>();
  for (const [hostId, q] of qemu)
    for (const g of q.list()) where.set(g.vmId, [...(where.get(g.vmId) ?? []), hostId]);
  for (const [vmId, hosts] of where)
    if (hosts.length > 1) violations.push(`vm ${vmId} runs on ${hosts.join(' and ')}`);
  const heartbeats: Promise<unknown>[] = [];
  for (const vm of docs) {
    const hosts = where.get(vm._id) ?? [];
    if (vm.state === 'running') {
      if (hosts.length !== 1 || hosts[0] !== vm.host)
        violations.push(
          `vm ${vm._id} is recorded running on ${vm.host} but runs on ${hosts.join(', ') || 'no host'}`,
        );
      else {
        const log = qemu.find(([h]) => h === vm.host)![1].files(vm._id).serialLog;
        heartbeats.push(
          waitForFreshHeartbeat(log, vm._id, {
            offset: readGuestLog(log, vm._id).size,
            timeoutMs: 20_000,
          }).catch(() => violations.push(`vm ${vm._id} runs on ${vm.host} but its guest sends no heartbeat`)),
        );
      }
    } else if (hosts.length > 0) {
      violations.push(`vm ${vm._id} is recorded ${vm.state} but runs on ${hosts.join(', ')}`);
    } else if (vm.state !== 'stopped') {
      violations.push(`vm ${vm._id} was left ${vm.state}${vm.stateReason ? ` (${vm.stateReason})` : ''}`);
    }
  }
  await Promise.all(heartbeats);
  for (const [vmId] of where)
    if (!recorded.has(vmId))
      violations.push(`a QEMU for vm ${vmId}, which the inventory does not know, runs`);

  const held = await inv.reservations.find({ state: 'active' }).toArray();
  for (const r of held)
    violations.push(`reservation ${r._id} (${r.vmId} on ${r.hostId}) is still held by ${r.owner}`);
  for (const l of await inv.leases.find({}).toArray())
    violations.push(`lease ${l._id} is still held by ${l.owner}`);
  // No host was healthy enough to keep its agent yet fenced (no host ever really fails here),
  // and every migration settled: committed or rolled back, none left owning its VM.
  for (const e of await inv.events.find({ operation: 'fence-host' }).toArray())
    violations.push(`a healthy host was fenced: ${e.message}`);
  for (const vm of docs)
    if (vm.migration)
      violations.push(
        `vm ${vm._id} is still owned by migration run ${vm.migration.runId} (${vm.migration.phase})`,
      );
  return { drift, violations };
}
