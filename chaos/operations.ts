import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { PRNG } from 'seedrandom';
import { backupOperations } from '../client/backup-operations';
import { describeError } from '../client/cli';
import { rolloutOperations } from '../client/rollout-operations';
import { vmOperations } from '../client/vm-operations';
import type { Config } from '../domain/config';
import { ResourceBusyError, VirtflowError } from '../domain/errors';
import { localHosts } from '../scripts/services/entry-points';
import type { Inventory } from '../inventory/db';
import { operateRollout } from './rollout-operator';

export const opKinds = [
  'create',
  'migrate',
  'backup',
  'restore',
  'stop',
  'start',
  'delete',
  'rollout',
] as const;
export type OpKind = (typeof opKinds)[number];

/**
 * completed: the workflow succeeded; rolled-back: it failed and undid its work (the final
 * checks prove the undo was clean); rejected: refused before anything changed (by the client,
 * or by the workflow's own checks); stuck: it did not end in time, which fails the run.
 */
export type Outcome = 'completed' | 'rolled-back' | 'rejected' | 'stuck';

export interface OpRecord {
  kind: OpKind;
  subject: string;
  outcome: Outcome;
  reason?: string;
  ms: number;
}

/** What the run believes exists: the final checks compare it with the inventory. */
export interface ChaosModel {
  vms: Set<string>;
  backups: string[];
  busy: Set<string>;
  counter: number;
  rolloutDone: boolean;
}

interface Started {
  workflowId: string;
  result: () => Promise<unknown>;
}

const PATCH = 'security-2026-11';

/** The workflow each kind of operation starts. */
const workflowTypes: Record<OpKind, string> = {
  create: 'createVm',
  migrate: 'liveMigration',
  backup: 'backupVm',
  restore: 'restoreVm',
  stop: 'stopVm',
  start: 'startVm',
  delete: 'deleteVm',
  rollout: 'rollingPatch',
};

/** Failures a workflow raises while checking the request, before it changed anything. */
const REFUSALS = ['ValidationError', 'NotFoundError', 'InvalidStateError'];
const GUEST_IMAGE = 'debian-busybox';

/** Errors that say the service is down for a moment, not that the operation is wrong. */
function transient(err: unknown): boolean {
  return !(err instanceof VirtflowError) && !(err instanceof WorkflowFailedError);
}

async function untilDeadline<T>(deadline: number, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!transient(err) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Chooses and runs the chaos run's operations through the same typed clients the CLI uses.
 * Each operation is started and followed through any outage of Temporal or the database:
 * a start that may have reached the server before the outage is found again by its id. The
 * rolling patch has an operator (chaos/rollout-operator.ts) who answers its halts.
 */
export function chaosOperations(
  client: Client,
  config: Config,
  inv: Inventory,
  rng: PRNG,
  log: (line: string) => void = () => undefined,
) {
  const vms = vmOperations(client, config);
  const backups = backupOperations(client, config);
  const rollouts = rolloutOperations(client, config);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng() * xs.length)];

  /** The next operation, chosen by the seed among those the current state allows. */
  async function choose(
    model: ChaosModel,
    index: number,
    total: number,
  ): Promise<{ kind: OpKind; subject: string }> {
    const docs = await untilDeadline(Date.now() + 120_000, () => inv.vms.find({}).toArray());
    const free = docs.filter((v) => !model.busy.has(v._id) && model.vms.has(v._id));
    const running = free.filter((v) => v.state === 'running').map((v) => v._id);
    const stopped = free.filter((v) => v.state === 'stopped').map((v) => v._id);
    const rolloutDue = !model.rolloutDone && total >= 8 && index === Math.floor(total / 2);
    if (rolloutDue) return { kind: 'rollout', subject: `rollout/chaos` };
    const options = (
      [
        { kind: 'create', subjects: [`c${++model.counter}`], weight: model.vms.size < 3 ? 6 : 2 },
        { kind: 'migrate', subjects: running, weight: 3 },
        { kind: 'backup', subjects: [...running, ...stopped], weight: 2 },
        { kind: 'restore', subjects: model.backups.length ? [`r${model.counter}`] : [], weight: 1 },
        { kind: 'stop', subjects: running, weight: 1 },
        { kind: 'start', subjects: stopped, weight: 2 },
        { kind: 'delete', subjects: model.vms.size > 3 ? [...running, ...stopped] : [], weight: 1 },
      ] satisfies { kind: OpKind; subjects: string[]; weight: number }[]
    ).filter((o) => o.subjects.length > 0);
    let roll = rng() * options.reduce((n, o) => n + o.weight, 0);
    const chosen = options.find((o) => (roll -= o.weight) < 0) ?? options[0];
    return { kind: chosen.kind, subject: pick(chosen.subjects) };
  }

  function start(kind: OpKind, subject: string, model: ChaosModel): Promise<Started> {
    switch (kind) {
      case 'create':
        return vms.create({ vmId: subject, image: GUEST_IMAGE, memoryMiB: 128 });
      case 'migrate':
        return vms.migrate({ vmId: subject });
      case 'backup':
        return backups.run({ vmId: subject });
      case 'restore':
        return backups.restore({ vmId: subject, backupId: pick(model.backups) });
      case 'stop':
        return vms.stop({ vmId: subject, gracefulTimeoutSec: 5 });
      case 'start':
        return vms.start({ vmId: subject });
      case 'delete':
        return vms.delete({ vmId: subject, gracefulTimeoutSec: 5 });
      case 'rollout':
        return rollouts.start({
          name: 'chaos',
          patch: PATCH,
          hosts: localHosts.map((h) => h.hostId),
          maxUnavailable: 1,
          canaryHosts: 1,
          retriesPerHost: 2,
          failureBudget: 0,
        });
    }
  }

  /** Runs one operation to its end and updates the model with what really happened. */
  async function run(kind: OpKind, subject: string, model: ChaosModel, timeoutMs: number): Promise<OpRecord> {
    const began = Date.now();
    const deadline = began + timeoutMs;
    const workflowId = kind === 'rollout' ? subject : `vm/${subject}`;
    model.busy.add(subject);
    const record = (outcome: Outcome, reason?: string): OpRecord => ({
      kind,
      subject,
      outcome,
      reason,
      ms: Date.now() - began,
    });
    try {
      let reachedServer = false;
      let started: Started;
      try {
        started = await untilDeadline(deadline, async () => {
          try {
            return await start(kind, subject, model);
          } catch (err) {
            if (transient(err)) reachedServer = true;
            // Our own start reached the server before the outage hid its answer: follow it. Only a
            // run of our own kind is ours; a rollout's evacuation may hold the VM meanwhile.
            if (err instanceof ResourceBusyError && reachedServer) {
              const running = await client.workflow.getHandle(workflowId).describe();
              if (running.type === workflowTypes[kind])
                return { workflowId, result: () => client.workflow.getHandle(workflowId).result() };
            }
            throw err;
          }
        });
      } catch (err) {
        return record(transient(err) ? 'stuck' : 'rejected', describeError(err));
      }
      let result: unknown;
      let ended = false;
      const operator =
        kind === 'rollout' ? operateRollout(rollouts, 'chaos', () => ended, log) : Promise.resolve([]);
      /** What the operator did, for the record's reason: after `reason` when there is one. */
      const operated = async (reason?: string) => {
        ended = true;
        const actions = await operator;
        const did = actions.length ? `operator: ${actions.join('; ')}` : undefined;
        return [reason, did].filter(Boolean).join('; ') || undefined;
      };
      try {
        // A run's result survives restarts of the server; the handle follows continue-as-new.
        result = await untilDeadline(deadline, () => client.workflow.getHandle(started.workflowId).result());
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const type = (err.cause as { type?: string } | undefined)?.type ?? '';
          return record(
            REFUSALS.includes(type) ? 'rejected' : 'rolled-back',
            await operated(describeError(err.cause ?? err)),
          );
        }
        return record('stuck', await operated(describeError(err)));
      }
      if (kind === 'create' || kind === 'restore') model.vms.add(subject);
      if (kind === 'delete') model.vms.delete(subject);
      if (kind === 'backup') model.backups.push((result as { backupId: string }).backupId);
      if (kind === 'rollout') model.rolloutDone = true;
      return record('completed', await operated());
    } finally {
      model.busy.delete(subject);
    }
  }

  return { choose, run };
}
