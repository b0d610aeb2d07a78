import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import type { scheduledBackup } from '../../workflows/scheduled-backup';
import type { stopVm } from '../../workflows/stop-vm';
import type { PolicyTally } from '../../domain/policy-tally';
import { deferred } from '../helpers/deferred';
import { MockedActivities } from '../helpers/mocked-activities';

/** The controller's steps of a first (full) backup of any VM on host-a. */
const firstBackupSteps = {
  planBackup: async (req: { vmId: string }) => ({
    vmId: req.vmId,
    host: 'host-a',
    running: true,
    diskPath: `/datastore/${req.vmId}.qcow2`,
    previous: null,
    fullReason: 'the first backup of a chain',
  }),
  catalogBackupStarted: async (req: { plan: { vmId: string } }) => ({
    backupId: `${req.plan.vmId}-1`,
    kind: 'full',
    bitmap: 'vf-chain-1',
    chainId: 'chain-1',
    targetPath: `/backups/${req.plan.vmId}-1.qcow2`,
    virtualSizeBytes: 1 << 30,
  }),
  catalogBackupFinished: async () => undefined,
};

/**
 * A policy selecting `vmIds`, served page by page as the inventory does, and the end of its
 * run: the tally it recorded, and every input each run of it was started with.
 */
function recordedRun(vmIds: string[]) {
  const run: {
    tally?: PolicyTally;
    pagesAfter: (string | undefined)[];
    steps: Record<string, (...args: never[]) => Promise<unknown>>;
  } = {
    pagesAfter: [],
    steps: {
      policyVmPage: async (req: { after?: string; limit: number }) => {
        run.pagesAfter.push(req.after);
        const page = vmIds.filter((id) => req.after === undefined || id > req.after).slice(0, req.limit);
        return { vmIds: page, next: page.length === req.limit ? page[page.length - 1] : undefined };
      },
      backupsDueForVerification: async () => [],
      reportStaleBackups: async () => [],
      recordPolicyRun: async (req: { tally: PolicyTally }) => {
        run.tally = req.tally;
        return { paused: false };
      },
    },
  };
  return run;
}

describe('scheduledBackup workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-scheduled-backup');

  /** The run a run continued as, and the input it handed over (none for the last run). */
  async function continuation(
    workflowId: string,
    runId: string,
  ): Promise<{ runId?: string; input?: Record<string, unknown> }> {
    const { events } = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    const next = events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes;
    const data = next?.input?.payloads?.[0]?.data;
    return {
      runId: next?.newExecutionRunId ?? undefined,
      input: data ? (JSON.parse(Buffer.from(data).toString()) as Record<string, unknown>) : undefined,
    };
  }

  test('backs each VM up as its own vm/<id> run: a busy VM is reported skipped, a failure reported, never missed', async () => {
    const releaseBusy = deferred();
    const policyRun = recordedRun(['broken', 'busy', 'good']);
    const activities = {
      controller: {
        loadBackupPolicy: async () => ({
          spec: {
            maxParallel: 2,
            retention: undefined,
            maxSpeedMiBps: undefined,
            fullEvery: 7,
            reverifyAfterHours: 24,
            alertAfterHours: 48,
            vmLabels: { tier: 'db' },
          },
          vmIds: [],
        }),
        // `busy` is held by a stop that waits on the test.
        beginVmOperation: async () => {
          await releaseBusy.promise;
          return { _id: 'busy', host: 'host-a' };
        },
        recordVmOutcome: async () => undefined,
        ...firstBackupSteps,
        catalogBackupFailed: async () => undefined,
        ...policyRun.steps,
      },
      hosts: {
        'host-a': {
          runBackup: async (req: { vmId: string }) => {
            if (req.vmId === 'broken')
              throw ApplicationFailure.nonRetryable('disk read error', 'BackupFailed');
            return { sizeBytes: 1 << 20, sha256: 'cd'.repeat(32), durationMs: 10, copyMs: 5 };
          },
          deleteBackupFile: async () => undefined,
          stopGuest: async () => ({ how: 'graceful' }),
        },
      },
    };
    await env.run(activities, async () => {
      const stop = await env.client.workflow.start<typeof stopVm>('stopVm', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: workflowIds.vm('busy'),
        args: [{ vmId: 'busy' }],
      });
      const run = await env.client.workflow.execute<typeof scheduledBackup>('scheduledBackup', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: 'backup-policy/nightly/run-1',
        args: [{ policy: 'nightly' }],
      });
      releaseBusy.resolve();
      await stop.result();
      const byVm = Object.fromEntries(run.results.map((r) => [r.vmId, r]));
      expect(byVm.busy).toMatchObject({ outcome: 'skipped', reason: 'VM busy with another operation' });
      expect(byVm.good).toMatchObject({ outcome: 'completed', backupId: 'good-1' });
      expect(byVm.broken).toMatchObject({
        outcome: 'failed',
        reason: expect.stringMatching(/disk read error/),
      });
    });
    expect(policyRun.tally).toMatchObject({ completed: 1, failed: 1, skipped: 1 });
    expect(policyRun.tally?.notCompleted.map((r) => r.vmId).sort()).toEqual(['broken', 'busy']);
  });

  test('a policy over many VMs backs them up a page per run, continuing as new with a cursor and a tally, each VM once, recorded once', async () => {
    const vmIds = ['v1', 'v2', 'v3', 'v4', 'v5'];
    const backedUp: string[] = [];
    const policyRun = recordedRun(vmIds);
    const activities = {
      controller: {
        loadBackupPolicy: async () => ({
          spec: { maxParallel: 2, fullEvery: 7, reverifyAfterHours: 24, alertAfterHours: 48, vmLabels: {} },
          vmIds: [],
        }),
        ...firstBackupSteps,
        ...policyRun.steps,
      },
      hosts: {
        'host-a': {
          runBackup: async (req: { vmId: string }) => {
            backedUp.push(req.vmId);
            return { sizeBytes: 1 << 20, sha256: 'cd'.repeat(32), durationMs: 10, copyMs: 5 };
          },
        },
      },
    };
    const { run, carried } = await env.run(activities, async () => {
      const handle = await env.client.workflow.start<typeof scheduledBackup>('scheduledBackup', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: 'backup-policy/many/run-1',
        args: [{ policy: 'many', chunk: 2 }],
      });
      const result = await handle.result();
      const first = await env.client.workflow
        .getHandle(handle.workflowId, handle.firstExecutionRunId)
        .describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');
      // What each run handed its continuation: a cursor and a tally, never a list of the fleet.
      const inputs: Record<string, unknown>[] = [];
      let runId: string | undefined = handle.firstExecutionRunId;
      while (runId) {
        const next: { runId?: string; input?: Record<string, unknown> } = await continuation(
          handle.workflowId,
          runId,
        );
        if (next.input) inputs.push(next.input);
        runId = next.runId;
      }
      return { run: result, carried: inputs.map((i) => i.carried as Record<string, unknown>) };
    });
    expect(run.tally).toMatchObject({ completed: 5, failed: 0, skipped: 0, notCompleted: [] });
    expect(backedUp.sort()).toEqual(vmIds);
    expect(policyRun.pagesAfter).toEqual([undefined, 'v2', 'v4']);
    expect(policyRun.tally?.completed).toBe(5);
    expect(carried.map((c) => Object.keys(c).sort())).toEqual([
      ['after', 'spec', 'tally'],
      ['after', 'spec', 'tally'],
    ]);
    expect(carried.map((c) => c.after)).toEqual(['v2', 'v4']);
    expect(env.calls.filter((c) => c === 'controller:loadBackupPolicy')).toHaveLength(1);
    expect(env.calls.filter((c) => c === 'controller:recordPolicyRun')).toHaveLength(1);
    expect(env.calls.filter((c) => c === 'controller:reportStaleBackups')).toHaveLength(3);
  });
});
