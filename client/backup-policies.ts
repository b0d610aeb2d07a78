import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  type Client,
  type ScheduleDescription,
  type ScheduleOptions,
} from '@temporalio/client';
import { MongoServerError } from 'mongodb';
import {
  backupPolicySchema,
  overlapPolicies,
  type BackupPolicyInput,
  type BackupPolicySpec,
} from '../domain/backup';
import { DEFAULT_PROJECT } from '../domain/access';
import { NotFoundError, parseInput, ValidationError } from '../domain/errors';
import { CONTROLLER_TASK_QUEUE } from '../domain/names';
import type { Inventory } from '../inventory/db';
import type { BackupPolicyDoc } from '../inventory/schemas';
import type { scheduledBackup } from '../workflows';
import type { Config } from '../domain/config';
import { overlapPolicy, toScheduleSpec } from './schedule-spec';
import { runUrl } from './temporal';

export const scheduleIdOf = (name: string) => `backup-policy/${name}`;

/** JSON with sorted keys: the database need not keep a document's key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

export interface PolicyView {
  policy: BackupPolicyDoc;
  schedule?: ScheduleDescription;
}

/** A policy as a table row or an API answer: what it backs up, when, and how its runs went. */
export function policySummary(v: PolicyView) {
  const s = v.policy.spec as BackupPolicyInput;
  return {
    name: v.policy._id,
    project: s.project ?? 'fleet',
    vms:
      s.vmIds?.join(',') ??
      Object.entries(s.vmLabels ?? {})
        .map(([k, x]) => `${k}=${x}`)
        .join(','),
    schedule: s.schedule.cron ?? (s.schedule.everySec ? `every ${s.schedule.everySec}s` : 'calendar'),
    paused: v.schedule?.state.paused ? 'yes' : 'no',
    next: v.schedule?.info.nextActionTimes[0],
    'last-run': v.policy.lastRunAt,
    'last-outcome': v.policy.lastOutcome,
    failures: v.policy.consecutiveFailures,
  };
}

/** A policy in full, as `backup policy show` prints it and the API answers it. */
export function policyDetail(config: Config, v: PolicyView) {
  return {
    ...policySummary(v),
    spec: v.policy.spec as BackupPolicyInput,
    scheduleId: v.policy.scheduleId,
    temporalUi: `${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/schedules/${encodeURIComponent(v.policy.scheduleId)}`,
    recentRuns: (v.schedule?.info.recentActions ?? []).map((a) =>
      runUrl(config, a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId),
    ),
    skippedOverlapping: v.schedule?.info.numActionsSkippedOverlap ?? 0,
  };
}
export type PolicyDetail = ReturnType<typeof policyDetail>;
export type PolicySummary = ReturnType<typeof policySummary>;

/**
 * Backup policies: a document in `backupPolicies` and a Temporal Schedule that runs
 * `scheduledBackup` for it. Everything is validated (spec, VMs, retention) before either is
 * written, creation is idempotent, and every change goes through the Schedule API with the
 * overlap policy stated explicitly.
 */
export function backupPolicies(client: Client, inv: Inventory) {
  async function validate(
    input: BackupPolicyInput,
  ): Promise<{ spec: BackupPolicySpec; options: ScheduleOptions }> {
    const spec = parseInput(backupPolicySchema, input, '');
    for (const vmId of spec.vmIds ?? []) {
      const vm = await inv.vms.findOne({ _id: vmId }, { projection: { project: 1 } });
      if (!vm) throw new ValidationError('vmIds', `no VM named "${vmId}"`);
      const project = vm.project ?? DEFAULT_PROJECT;
      if (spec.project && project !== spec.project)
        throw new ValidationError('vmIds', `VM ${vmId} is in project ${project}, not ${spec.project}`);
    }
    let scheduleSpec;
    try {
      scheduleSpec = toScheduleSpec(spec.schedule);
    } catch (err) {
      throw new ValidationError('schedule.calendar', (err as Error).message);
    }
    const options: ScheduleOptions = {
      scheduleId: scheduleIdOf(spec.name),
      spec: scheduleSpec,
      action: {
        type: 'startWorkflow',
        workflowType: 'scheduledBackup',
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: scheduleIdOf(spec.name),
        args: [{ policy: spec.name }] as Parameters<typeof scheduledBackup>,
        staticSummary: `Backup policy ${spec.name}`,
      },
      policies: {
        overlap: overlapPolicy[spec.overlap],
        catchupWindow: `${spec.catchupWindowSec}s`,
      },
      state: { note: `virtflow backup policy ${spec.name}` },
    };
    return { spec, options };
  }

  return {
    async create(input: BackupPolicyInput): Promise<PolicyView> {
      const { spec, options } = await validate(input);
      const now = new Date();
      const existing = await inv.backupPolicies.findOne({ _id: spec.name });
      if (existing && canonical(existing.spec) !== canonical(spec)) {
        throw new ValidationError(
          'name',
          `a backup policy named "${spec.name}" already exists with other settings (use \`update\`)`,
        );
      }
      if (!existing) {
        try {
          await inv.backupPolicies.insertOne({
            _id: spec.name,
            createdAt: now,
            updatedAt: now,
            revision: 1,
            spec,
            scheduleId: options.scheduleId,
            consecutiveFailures: 0,
          });
        } catch (err) {
          if (!(err instanceof MongoServerError && err.code === 11000)) throw err;
        }
      }
      try {
        await client.schedule.create(options);
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) {
          if (!existing) await inv.backupPolicies.deleteOne({ _id: spec.name });
          throw err;
        }
      }
      return this.show(spec.name);
    },

    async list(): Promise<PolicyView[]> {
      const docs = await inv.backupPolicies.find({}).sort({ _id: 1 }).toArray();
      return Promise.all(docs.map((d) => this.show(d._id)));
    },

    async show(name: string): Promise<PolicyView> {
      const policy = await inv.backupPolicies.findOne({ _id: name });
      if (!policy) throw new NotFoundError('backup policy', name);
      const schedule = await client.schedule
        .getHandle(policy.scheduleId)
        .describe()
        .catch((err: unknown) => {
          if (err instanceof ScheduleNotFoundError) return undefined;
          throw err;
        });
      return { policy, schedule };
    },

    async update(name: string, patch: Partial<BackupPolicyInput>): Promise<PolicyView> {
      const current = await inv.backupPolicies.findOne({ _id: name });
      if (!current) throw new NotFoundError('backup policy', name);
      const was = current.spec as BackupPolicyInput;
      if ('project' in patch && patch.project !== was.project)
        throw new ValidationError(
          'project',
          `policy ${name} stays in ${was.project ? `project ${was.project}` : 'the fleet'}`,
        );
      const { spec, options } = await validate({ ...was, ...patch, name });
      await client.schedule.getHandle(options.scheduleId).update((prev) => ({
        ...prev,
        spec: options.spec,
        action: options.action,
        policies: { ...prev.policies, ...options.policies },
      }));
      await inv.backupPolicies.updateOne(
        { _id: name },
        { $set: { spec, updatedAt: new Date() }, $inc: { revision: 1 } },
      );
      return this.show(name);
    },

    async pause(name: string, note = 'paused by an operator'): Promise<void> {
      await client.schedule.getHandle(scheduleIdOf(name)).pause(note);
    },

    /** Resumes a schedule and clears the failure streak that may have paused it. */
    async resume(name: string, note = 'resumed by an operator'): Promise<void> {
      await client.schedule.getHandle(scheduleIdOf(name)).unpause(note);
      await inv.backupPolicies.updateOne(
        { _id: name },
        { $set: { consecutiveFailures: 0, updatedAt: new Date() }, $inc: { revision: 1 } },
      );
    },

    /** Runs the policy now; the overlap policy is the policy's own unless one is given. */
    async trigger(name: string, overlap?: (typeof overlapPolicies)[number]): Promise<void> {
      const doc = await inv.backupPolicies.findOne({ _id: name });
      if (!doc) throw new NotFoundError('backup policy', name);
      const spec = parseInput(backupPolicySchema, doc.spec, 'policy');
      await client.schedule.getHandle(doc.scheduleId).trigger(overlapPolicy[overlap ?? spec.overlap]);
    },

    async delete(name: string): Promise<void> {
      const doc = await inv.backupPolicies.findOne({ _id: name });
      if (!doc) throw new NotFoundError('backup policy', name);
      await client.schedule
        .getHandle(doc.scheduleId)
        .delete()
        .catch((err: unknown) => {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        });
      await inv.backupPolicies.deleteOne({ _id: name });
    },
  };
}
