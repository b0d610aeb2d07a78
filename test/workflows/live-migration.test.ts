import { sendControl } from '../../client/updates';
import { ApplicationFailure } from '@temporalio/common';
import type { MigrationPlan } from '../../activities/controller/migration-inventory-activities';
import type { DriveResult } from '../../activities/host/contract';
import { newTracker } from '../../domain/convergence';
import { migrationPolicySchema, type MigrationStats } from '../../domain/migration';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import { abortMigration } from '../../workflows/migration-control';
import { progressQuery } from '../../workflows/observability';
import { deferred } from '../helpers/deferred';
import { refusal, workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';
import { until } from '../helpers/until';

const plan: MigrationPlan = {
  vmId: 'app',
  source: 'host-a',
  target: 'host-b',
  memoryMiB: 256,
  vcpus: 1,
  diskPath: '/datastore/app.qcow2',
  guest: { firmware: 'bios', guestAgent: true, sshKeys: [], dataDisks: [], cpuModel: 'qemu64' },
  policy: migrationPolicySchema.parse({}),
};

function stats(status: string, remainingBytes = 0): MigrationStats {
  return {
    status,
    transferredBytes: 256 << 20,
    remainingBytes,
    totalBytes: 256 << 20,
    dirtyPagesRate: 0,
    iteration: 2,
    expectedDowntimeMs: 5,
    mbps: 1000,
    elapsedMs: 300,
    downtimeMs: status === 'completed' ? 4 : null,
    downtimeLimitMs: 300,
    bandwidthMiBps: 1024,
  };
}

const drive =
  (outcome: DriveResult['outcome'], status = outcome === 'completed' ? 'completed' : 'active') =>
  async (): Promise<DriveResult> => ({
    outcome,
    reason: outcome === 'failed' ? 'QEMU reported failed' : undefined,
    stats: stats(status, outcome === 'completed' ? 0 : 1 << 20),
    tracker: newTracker(0),
    sourceHeartbeatSeq: 41,
  });

/** Activities that let a migration of `app` from host-a to host-b succeed; tests override steps. */
function happyPath(over: { controller?: ControllerMocks; source?: HostMocks; target?: HostMocks } = {}) {
  const recorded: { outcome?: string; vmState?: string; reason?: string } = {};
  return {
    recorded,
    mocks: {
      controller: {
        planMigration: async () => plan,
        reserveMigrationTarget: async () => 'claim-1',
        recordMigrationVerified: async () => undefined,
        commitMigration: async () => undefined,
        recordMigrationNotCommitted: async (req: { outcome: string; vmState?: string; reason: string }) => {
          Object.assign(recorded, req);
        },
        ...over.controller,
      } as ControllerMocks,
      hosts: {
        'host-a': {
          guestStatus: async () => ({ running: true, status: 'running' }),
          driveMigration: drive('completed'),
          quitMigratedSource: async () => ({ quit: true }),
          resumeSource: async () => ({ status: 'running' }),
          ...over.source,
        } as HostMocks,
        'host-b': {
          prepareIncoming: async () => ({ address: '127.0.0.1', port: 49220, pid: 1 }),
          verifyGuestAlive: async () => ({ seq: null, via: 'guest-agent' }),
          adoptIncomingGuest: async () => undefined,
          killIncoming: async () => ({ killed: true }),
          ...over.target,
        } as HostMocks,
      },
    },
  };
}

describe('liveMigration workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-live-migration');

  const start = (id: string) =>
    env.client.workflow.start('liveMigration', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.vm(id),
      args: [{ vmId: 'app', to: 'host-b' }],
    });
  test('commits only after the target verifies a fresh heartbeat, then quits the source', async () => {
    const { mocks } = happyPath();
    const result = await env.run(mocks, async () => (await start('commit')).result());
    expect(result).toMatchObject({
      source: 'host-a',
      target: 'host-b',
      verifiedBy: 'guest-agent',
      downtimeMs: 4,
    });
    expect(env.callsTo('host-b')).toEqual(['prepareIncoming', 'verifyGuestAlive', 'adoptIncomingGuest']);
    expect(env.callsTo('host-a')).toEqual(['guestStatus', 'driveMigration', 'quitMigratedSource']);
    const controller = env.callsTo('controller');
    expect(controller[controller.length - 1]).toBe('commitMigration');
    expect(env.calls.indexOf('host-b:verifyGuestAlive')).toBeLessThan(
      env.calls.indexOf('host-a:quitMigratedSource'),
    );
  });

  test('a failed verification kills the destination first, then resumes the source, and never commits', async () => {
    const { mocks, recorded } = happyPath({
      target: {
        verifyGuestAlive: async () => {
          throw ApplicationFailure.nonRetryable('no fresh heartbeat within 30 s');
        },
      },
    });
    const { message } = await env.run(mocks, async () =>
      workflowFailure((await start('verify-fails')).result()),
    );
    expect(message).toMatch(/no fresh heartbeat/);
    expect(env.calls).not.toContain('controller:commitMigration');
    expect(env.calls).not.toContain('host-a:quitMigratedSource');
    expect(env.calls.indexOf('host-b:killIncoming')).toBeLessThan(env.calls.indexOf('host-a:resumeSource'));
    expect(recorded).toMatchObject({ outcome: 'rolled-back' });
  });

  test('a destination that cannot be confirmed dead leaves the source untouched and the run failed', async () => {
    const { mocks, recorded } = happyPath({
      source: { driveMigration: drive('failed') },
      target: {
        killIncoming: async () => {
          throw ApplicationFailure.nonRetryable('agent gone');
        },
      },
    });
    await env.run(mocks, async () => workflowFailure((await start('kill-fails')).result()));
    expect(env.calls).not.toContain('host-a:resumeSource');
    expect(recorded.outcome).toBe('failed');
    expect(recorded.reason).toMatch(/could not be confirmed dead.*source left untouched/);
  });

  test('a source that does not really run the VM fails the pre-checks and releases the claim', async () => {
    const { mocks, recorded } = happyPath({
      source: { guestStatus: async () => ({ running: false, status: 'shutdown' }) },
    });
    const { message } = await env.run(mocks, async () => workflowFailure((await start('mismatch')).result()));
    expect(message).toBe('vm app is recorded on host-a but QEMU there reports shutdown');
    expect(env.calls).not.toContain('host-b:prepareIncoming');
    expect(recorded.outcome).toBe('rolled-back');
  });

  test('abort while transferring rolls back; abort is refused in post-copy and once committing', async () => {
    let round = 0;
    const releaseCommit = deferred();
    const { mocks, recorded } = happyPath({
      source: {
        // Transfers forever until aborted: the test, not timing, decides when the abort lands.
        driveMigration: async () => {
          round++;
          await new Promise((r) => setTimeout(r, 50));
          return drive('in-progress')();
        },
      },
    });
    await env.run(mocks, async () => {
      const handle = await start('abort');
      await until(
        'transferring',
        async () => round >= 2 && (await handle.query(progressQuery)).phase === 'transferring',
      );
      expect(
        await sendControl(() =>
          handle.executeUpdate(abortMigration, { args: [{ reason: 'window closed' }] }),
        ),
      ).toBe('aborting: window closed');
      expect((await workflowFailure(handle.result())).message).toBe(
        'migration of app aborted: window closed',
      );
    });
    expect(env.calls.indexOf('host-b:killIncoming')).toBeLessThan(env.calls.indexOf('host-a:resumeSource'));
    expect(recorded).toMatchObject({ outcome: 'rolled-back', reason: 'window closed' });

    const pc = happyPath({
      source: {
        driveMigration: async () => {
          await new Promise((r) => setTimeout(r, 50));
          return drive('in-progress', 'postcopy-active')();
        },
      },
    });
    await env.run(pc.mocks, async () => {
      const handle = await start('abort-post-copy');
      await until('post-copy', async () => (await handle.query(progressQuery)).phase === 'post-copy');
      expect(await refusal(sendControl(() => handle.executeUpdate(abortMigration, { args: [{}] })))).toMatch(
        /^cannot abort during post-copy: the guest already runs on the target/,
      );
      await handle.terminate('test over');
    });

    const late = happyPath({
      source: {
        quitMigratedSource: async () => {
          await releaseCommit.promise;
          return { quit: true };
        },
      },
    });
    await env.run(late.mocks, async () => {
      const handle = await start('abort-committing');
      await until('committing', async () => (await handle.query(progressQuery)).phase === 'committing');
      expect(await refusal(sendControl(() => handle.executeUpdate(abortMigration, { args: [{}] })))).toBe(
        'cannot abort in phase committing',
      );
      releaseCommit.resolve();
      await handle.result();
    });
    expect(env.calls).toContain('controller:commitMigration');
  });

  test('abort is refused once QEMU reports completed: the target already wrote the shared disk', async () => {
    const releaseVerify = deferred();
    const { mocks } = happyPath({
      target: {
        verifyGuestAlive: async () => {
          await releaseVerify.promise;
          return { seq: null, via: 'guest-agent' };
        },
      },
    });
    await env.run(mocks, async () => {
      const handle = await start('abort-verifying');
      await until('verifying', async () => (await handle.query(progressQuery)).phase === 'verifying');
      expect(await refusal(sendControl(() => handle.executeUpdate(abortMigration, { args: [{}] })))).toBe(
        'cannot abort in phase verifying',
      );
      releaseVerify.resolve();
      expect((await handle.result()).target).toBe('host-b');
    });
    expect(env.calls).not.toContain('host-a:resumeSource');
    expect(env.calls).not.toContain('host-b:killIncoming');
  });

  test('an abort that lands as the stream completes keeps the running target and goes forward', async () => {
    let round = 0;
    let killRequest: { keepIfCompleted?: boolean } | undefined;
    const { mocks } = happyPath({
      source: {
        driveMigration: async () => {
          round++;
          await new Promise((r) => setTimeout(r, 50));
          return drive('in-progress')();
        },
      },
      target: {
        // The target had loaded the whole stream when the abort reached it.
        killIncoming: async (req: { keepIfCompleted?: boolean }) => {
          killRequest = req;
          return { killed: false, completed: true };
        },
      },
    });
    const result = await env.run(mocks, async () => {
      const handle = await start('abort-too-late');
      await until('transferring', async () => round >= 2);
      await sendControl(() => handle.executeUpdate(abortMigration, { args: [{ reason: 'too late' }] }));
      return handle.result();
    });
    expect(killRequest).toMatchObject({ keepIfCompleted: true });
    expect(result.target).toBe('host-b');
    expect(env.calls).not.toContain('host-a:resumeSource');
    expect(env.calls.indexOf('host-b:killIncoming')).toBeLessThan(
      env.calls.indexOf('host-b:verifyGuestAlive'),
    );
    expect(env.calls).toContain('controller:commitMigration');
  });

  test('a target fenced after verification: adoption stops once HA has taken the VM over, nothing is committed or put back', async () => {
    const { mocks, recorded } = happyPath({
      controller: { migrationTakenOver: async () => true },
      target: {
        // Stands in for an agent that is gone: the round fails, then the inventory is asked.
        adoptIncomingGuest: async () => {
          throw new Error('agent of host-b is gone');
        },
      },
    });
    const failure = await env.run(mocks, async () =>
      workflowFailure((await start('target-fenced')).result()),
    );
    expect(failure.type).toBe('MigrationTargetLost');
    expect(failure.message).toMatch(/host-b was fenced after app's guest moved there; HA took the VM over/);
    expect(recorded.outcome).toBe('taken-over');
    // One round of attempts, then the question that ended it.
    expect(env.callsTo('host-b').filter((c) => c === 'adoptIncomingGuest')).toHaveLength(3);
    expect(env.calls).not.toContain('controller:commitMigration');
    expect(env.calls).not.toContain('host-a:resumeSource');
    expect(env.calls).not.toContain('host-b:killIncoming');
  });

  test('a commit that finds the VM taken over ends the run without claiming success', async () => {
    const { mocks, recorded } = happyPath({ controller: { commitMigration: async () => 'taken-over' } });
    const failure = await env.run(mocks, async () =>
      workflowFailure((await start('commit-taken-over')).result()),
    );
    expect(failure.type).toBe('MigrationTargetLost');
    expect(recorded.outcome).toBe('taken-over');
    expect(env.calls).not.toContain('controller:migrationTakenOver');
  });

  test('once verified, the commit outlasts database errors and a source that cannot be quit', async () => {
    let commitAttempts = 0;
    let details: Record<string, unknown> = {};
    const { mocks } = happyPath({
      controller: {
        commitMigration: async (req: { details: Record<string, unknown> }) => {
          if (++commitAttempts <= 2) throw new Error('connection to the database lost');
          details = req.details;
        },
      },
      source: {
        quitMigratedSource: async () => {
          throw ApplicationFailure.nonRetryable('agent of host-a is gone');
        },
      },
    });
    const result = await env.run(mocks, async () => (await start('commit-forward')).result());
    expect(result.target).toBe('host-b');
    expect(commitAttempts).toBe(3);
    expect(details.sourceLeftPaused).toMatch(/agent of host-a is gone/);
    expect(env.calls.indexOf('controller:recordMigrationVerified')).toBeLessThan(
      env.calls.indexOf('host-b:adoptIncomingGuest'),
    );
    expect(env.calls).not.toContain('host-a:resumeSource');
  });
});
