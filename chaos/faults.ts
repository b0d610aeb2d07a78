import type { Client } from '@temporalio/client';
import { auditOperations } from '../client/audit-operations';
import type { Config } from '../domain/config';
import type { Inventory } from '../inventory/db';
import type { ChaosStack, KillTarget } from './chaos-stack';

/**
 * Faults beyond random kills, each aimed at a moment the review found unguarded. A class is
 * counted only when it really hit its moment (a migration caught verifying, say), so the report
 * says what was injected, not what was attempted.
 *
 * - db-outage: FerretDB down for twice the loss interval, then back (hosts look lost meanwhile);
 * - agent-restart: an agent stopped cleanly outside maintenance and started again by its supervisor;
 * - kill-at-commit: the controller killed while a live migration verifies or commits;
 * - kill-during-backup: a host's agent killed while a backup on it copies or checks its file;
 * - fix-races-create: a reconcile pass and `audit fix` of everything open while a VM is created.
 */
export const faultClasses = [
  'db-outage',
  'agent-restart',
  'kill-at-commit',
  'kill-during-backup',
  'fix-races-create',
] as const;
export type FaultClass = (typeof faultClasses)[number];

export interface FaultRecord {
  injected: number;
  /** One line per injection: what was hit. */
  hits: string[];
}

/** Every class, none injected yet. */
export function noFaults(): Record<FaultClass, FaultRecord> {
  const records = {} as Record<FaultClass, FaultRecord>;
  for (const c of faultClasses) records[c] = { injected: 0, hits: [] };
  return records;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The open workflows of an operation in a phase, from Temporal's visibility. */
async function inPhase(client: Client, operation: string, phases: string[]) {
  const query = `VfOperation = '${operation}' AND ExecutionStatus = 'Running' AND VfPhase IN (${phases
    .map((p) => `'${p}'`)
    .join(', ')})`;
  const found: { workflowId: string; hosts: string[] }[] = [];
  try {
    for await (const w of client.workflow.list({ query })) {
      const hosts = (w.searchAttributes?.VfHosts as string[] | undefined) ?? [];
      found.push({ workflowId: w.workflowId, hosts });
    }
  } catch {
    // Temporal may be the process just killed: nothing to aim at this time.
  }
  return found;
}

/** Polls until an operation reaches one of the phases, for at most `withinMs` or until the run ends. */
async function catchInPhase(
  client: Client,
  operation: string,
  phases: string[],
  withinMs: number,
  running: () => boolean,
) {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline && running()) {
    const found = await inPhase(client, operation, phases);
    if (found.length > 0) return found[0];
    await sleep(100);
  }
  return undefined;
}

export function faultInjector(deps: {
  stack: ChaosStack;
  client: () => Client;
  config: Config;
  inv: Inventory;
  /** The loss interval of the run's agents (facts interval × 3). */
  lossIntervalMs: number;
  rng: () => number;
  /** False once the operations are done: a fault still waiting for its moment gives up. */
  running: () => boolean;
  log: (line: string) => void;
}) {
  const { stack, log } = deps;
  const records = noFaults();
  const hit = (c: FaultClass, what: string) => {
    records[c].injected++;
    records[c].hits.push(what);
    log(`fault ${c}: ${what}`);
  };

  const inject: Record<FaultClass, () => Promise<void>> = {
    async 'db-outage'() {
      const ms = 2 * deps.lossIntervalMs + 2000;
      await stack.kill('ferretdb');
      await sleep(ms);
      await stack.restart('ferretdb');
      hit('db-outage', `FerretDB down for ${ms / 1000} s`);
    },
    async 'agent-restart'() {
      const host = ['host-a', 'host-b', 'host-c'][Math.floor(deps.rng() * 3)];
      await stack.stopCleanly(`agent:${host}` as KillTarget);
      hit('agent-restart', `${host}'s agent stopped cleanly, restarted by its supervisor`);
    },
    async 'kill-at-commit'() {
      const w = await catchInPhase(
        deps.client(),
        'live-migration',
        ['verifying', 'committing'],
        60_000,
        deps.running,
      );
      if (!w) return;
      await stack.kill('controller');
      hit('kill-at-commit', `controller killed while ${w.workflowId} verified or committed`);
    },
    async 'kill-during-backup'() {
      const w = await catchInPhase(deps.client(), 'backup-vm', ['copying'], 60_000, deps.running);
      const host = w?.hosts[0];
      if (!host) return;
      await stack.kill(`agent:${host}` as KillTarget);
      hit('kill-during-backup', `${host}'s agent killed while ${w.workflowId} copied or checked its file`);
    },
    async 'fix-races-create'() {
      const w = await catchInPhase(
        deps.client(),
        'create-vm',
        ['preparing-disk', 'starting', 'booting'],
        60_000,
        deps.running,
      );
      if (!w) return;
      const audit = auditOperations(deps.client(), deps.config);
      try {
        await (await audit.run()).result();
        const open = await deps.inv.drift.find({ state: 'open' }).toArray();
        for (const d of open) await audit.fix(d._id).catch(() => undefined);
        hit('fix-races-create', `a pass and ${open.length} fix(es) while ${w.workflowId} created its VM`);
      } catch (err) {
        log(`fault fix-races-create: the pass failed (${(err as Error).message}); not counted`);
      }
    },
  };
  return { records, inject };
}
