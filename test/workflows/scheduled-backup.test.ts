import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import type { scheduledBackup } from '../../workflows/scheduled-backup';
import type { stopVm } from '../../workflows/stop-vm';
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

/** The end of a policy run, with what it recorded (no backup due for re-verification). */
type RecordedResult = { vmId: string; outcome: string; reason?: string };

function recordedRun() {
  const run: {
    recorded: RecordedResult[];
    steps: Record<string, (...args: never[]) => Promise<unknown>>;
  } = {
    recorded: [],
    steps: {
      backupsDueForVerification: async () => [],
      recordPolicyRun: async (req: { results: RecordedResult[] }) => {
        run.recorded = req.results;
        return { paused: false };
      },
    },
  };
  return run;
}

describe('scheduledBackup workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-scheduled-backup');

  test('backs each VM up as its own vm/<id> run: a busy VM is reported skipped, a failure reported, never missed', async () => {
    const releaseBusy = deferred();
    const policyRun = recordedRun();
    const activities = {
      controller: {
        loadBackupPolicy: async () => ({
          spec: {
            maxParallel: 2,
            retention: undefined,
            maxSpeedMiBps: undefined,
            fullEvery: 7,
            reverifyAfterHours: 24,
          },
          vmIds: ['busy', 'good', 'broken'],
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
    expect(policyRun.recorded.map((r) => r.vmId).sort()).toEqual(['broken', 'busy', 'good']);
  });

  test('a policy over many VMs backs them up a chunk per run, continuing as new, each VM once, recorded once', async () => {
    const vmIds = ['v1', 'v2', 'v3', 'v4', 'v5'];
    const backedUp: string[] = [];
    const policyRun = recordedRun();
    const activities = {
      controller: {
        loadBackupPolicy: async () => ({
          spec: { maxParallel: 2, fullEvery: 7, reverifyAfterHours: 24 },
          vmIds,
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
    const run = await env.run(activities, async () => {
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
      return result;
    });
    expect(run.results.map((r) => r.outcome)).toEqual(Array(5).fill('completed'));
    expect(backedUp.sort()).toEqual(vmIds);
    expect(policyRun.recorded.map((r) => r.vmId).sort()).toEqual(vmIds);
    expect(env.calls.filter((c) => c === 'controller:loadBackupPolicy')).toHaveLength(1);
    expect(env.calls.filter((c) => c === 'controller:recordPolicyRun')).toHaveLength(1);
  });
});
