import { ApplicationFailure } from '@temporalio/common';
import { sendControl } from '../../client/updates';
import { parseInput } from '../../domain/errors';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import { PREFLIGHT_SKIP } from '../../domain/patch';
import { rolloutRequestSchema, type RolloutRequest } from '../../domain/rollout';
import {
  abortRollout,
  hostPatchEnded,
  pauseRollout,
  resumeRollout,
  retryHost,
  rolloutProgress,
  skipHost,
  type HostPatchReport,
} from '../../workflows/rollout-control';
import type { rollingPatch } from '../../workflows/rolling-patch';
import { deferred } from '../helpers/deferred';
import { refusal } from '../helpers/run-outcomes';
import { MockedActivities, type HostMocks } from '../helpers/mocked-activities';
import { until } from '../helpers/until';

/**
 * Simulated host ids (`sim-…`) share one task queue, so one mocked agent serves any number of
 * hosts. A host whose pre-flight asks to be skipped goes through a whole patchHost run without
 * maintenance, which is all the rollout's window logic needs: it sees each host end.
 */
const hostIds = (n: number) => Array.from({ length: n }, (_, i) => `sim-h${String(i).padStart(3, '0')}`);

function agent(opts: { failing?: Set<string>; hold?: Map<string, Promise<void>> } = {}): HostMocks {
  return {
    readPatch: async ({ hostId }: { hostId: string }) => {
      await opts.hold?.get(hostId);
      if (opts.failing?.has(hostId))
        throw ApplicationFailure.nonRetryable(`patch catalogue unreadable on ${hostId}`, 'PatchNotFound');
      return { name: 'p1', version: 'v2', currentLevel: 'v1', timeoutSec: 60 };
    },
    runPatchStep: async () => ({ exitCode: PREFLIGHT_SKIP, output: 'not needed here', timedOut: false }),
  };
}

const controller = (hosts: string[]) => ({
  planRollout: async (input: RolloutRequest) => ({
    spec: parseInput(rolloutRequestSchema, input, ''),
    hosts,
  }),
  fitBatch: async (req: { batch: string[] }) => ({ fits: req.batch }),
  endedPatchRuns: async () => [],
});

describe('rollingPatch workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-rolling-patch');

  const start = (req: Omit<RolloutRequest, 'patch'>) =>
    env.client.workflow.start<typeof rollingPatch>('rollingPatch', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.rollout(req.name),
      args: [{ patch: 'p1', retryDelaySec: 0, ...req }],
    });

  test('a failure over the budget halts the rollout until an operator skips the host and resumes', async () => {
    const hosts = hostIds(3);
    await env.run(
      { controller: controller(hosts), hosts: { [hosts[0]]: agent({ failing: new Set([hosts[1]]) }) } },
      async () => {
        const handle = await start({ name: 'budget', hosts, retriesPerHost: 1, failureBudget: 0 });
        const halted = await until('halted', async () => {
          const p = await handle.query(rolloutProgress);
          return p.phase === 'halted' && p;
        });
        expect(halted.hosts.map((h) => h.state)).toEqual(['skipped', 'failed', 'pending']);
        expect(halted.hosts[1]).toMatchObject({
          attempts: 2,
          reason: expect.stringMatching(/catalogue unreadable/),
        });
        expect(await refusal(sendControl(() => handle.executeUpdate(resumeRollout)))).toBe(
          '1 host(s) failed, over the budget of 0: skip or retry them first',
        );
        expect(
          await refusal(sendControl(() => handle.executeUpdate(retryHost, { args: [{ hostId: hosts[0] }] }))),
        ).toBe(`${hosts[0]} is skipped; only failed hosts can be retried`);
        expect(
          await refusal(
            sendControl(() => handle.executeUpdate(skipHost, { args: [{ hostId: 'sim-nope' }] })),
          ),
        ).toBe('hostId: sim-nope is not part of this rollout');
        await sendControl(() => handle.executeUpdate(skipHost, { args: [{ hostId: hosts[1] }] }));
        await sendControl(() => handle.executeUpdate(resumeRollout));
        const done = await handle.result();
        expect(done.phase).toBe('done');
        expect(done.hosts.map((h) => h.state)).toEqual(['skipped', 'skipped', 'skipped']);
        expect(done.hosts[1].reason).toBe('skipped by an operator');
      },
    );
  });

  test("a report not from the host's own patch run is ignored: anyone can signal a rollout", async () => {
    const hosts = hostIds(2);
    const release = deferred();
    const hold = new Map([[hosts[0], release.promise]]);
    await env.run({ controller: controller(hosts), hosts: { [hosts[0]]: agent({ hold }) } }, async () => {
      const handle = await start({ name: 'forged', hosts, canaryHosts: 1 });
      await until(
        'the canary in flight',
        async () => (await handle.query(rolloutProgress)).phase === 'canary',
      );
      const forged = [
        { hostId: hosts[0], attempt: 1, outcome: 'patched', runId: 'not-its-run' },
        { hostId: hosts[0], attempt: 1, outcome: 'patched' },
        { hostId: 'sim-h999', attempt: 1, outcome: 'failed' },
        { hostId: hosts[0], attempt: 1, outcome: 'owned' },
      ];
      for (const r of forged) await handle.signal(hostPatchEnded, r as HostPatchReport);
      // Still waiting for its real run, which the test holds.
      const progress = await handle.query(rolloutProgress);
      expect(progress.hosts.find((h) => h.hostId === hosts[0])?.state).toBe('patching');
      release.resolve();
      const ended = await handle.result();
      expect(ended.hosts.map((h) => h.state)).toEqual(['skipped', 'skipped']);
    });
  });

  test('pause waits for the hosts in flight; abort starts nothing new and lets them finish', async () => {
    const hosts = hostIds(4);
    const release = deferred();
    // The first host's patch run is held until the test lets it go.
    const hold = new Map([[hosts[0], release.promise]]);
    await env.run({ controller: controller(hosts), hosts: { [hosts[0]]: agent({ hold }) } }, async () => {
      const handle = await start({ name: 'pause', hosts, canaryHosts: 1 });
      await until(
        'the canary in flight',
        async () => (await handle.query(rolloutProgress)).phase === 'canary',
      );
      await sendControl(() => handle.executeUpdate(pauseRollout));
      expect(await refusal(sendControl(() => handle.executeUpdate(pauseRollout)))).toBe(
        'the rollout is already paused',
      );
      const pausing = await handle.query(rolloutProgress);
      expect(pausing).toMatchObject({ phase: 'pausing', waitingFor: `${hosts[0]} to finish` });
      release.resolve();
      await until('paused', async () => (await handle.query(rolloutProgress)).phase === 'paused');
      await sendControl(() => handle.executeUpdate(abortRollout));
      const ended = await handle.result();
      expect(ended.phase).toBe('aborted');
      expect(ended.hosts.map((h) => h.state)).toEqual(['skipped', 'pending', 'pending', 'pending']);
    });
  });

  test('a long rollout continues as new, carrying every host, and still patches each exactly once', async () => {
    const hosts = hostIds(40);
    let patchRuns = 0;
    const counting: HostMocks = {
      ...agent(),
      readPatch: async () => {
        patchRuns++;
        return { name: 'p1', version: 'v2', currentLevel: 'v1', timeoutSec: 60 };
      },
    };
    await env.run({ controller: controller(hosts), hosts: { [hosts[0]]: counting } }, async () => {
      const handle = await start({
        name: 'long',
        hosts,
        maxUnavailable: 5,
        canaryHosts: 0,
        historyLimit: 200,
      });
      const done = await handle.result();
      expect(done.phase).toBe('done');
      expect(done.hosts.every((h) => h.state === 'skipped' && h.attempts === 1)).toBe(true);
      const first = await env.client.workflow
        .getHandle(handle.workflowId, handle.firstExecutionRunId)
        .describe();
      expect(first.status.name).toBe('CONTINUED_AS_NEW');
    });
    expect(patchRuns).toBe(40);
  });
});
