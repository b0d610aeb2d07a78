import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import { PREFLIGHT_SKIP } from '../../domain/patch';
import type { patchHost } from '../../workflows/patch-host';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

type Step = { exitCode: number; output: string; timedOut: boolean };
const ok: Step = { exitCode: 0, output: '', timedOut: false };

/** host-a runs no VM and is at patch level v1; p1 brings it to v2. Tests override steps. */
function mocks(
  over: { host?: HostMocks; steps?: Partial<Record<'preflight' | 'apply' | 'post', Step>> } = {},
) {
  const maintenance: { state: string; reason?: string }[] = [];
  return {
    maintenance,
    activities: {
      controller: {
        beginMaintenance: async () => ({ running: [], stopped: [] }),
        vmsOn: async () => ({ running: [], stopped: [] }),
        setMaintenanceState: async (req: { state: string; reason?: string }) => {
          maintenance.push({ state: req.state, reason: req.reason });
        },
        waitForAgentRestart: async () => undefined,
        endMaintenance: async () => ({ evacuatedVms: [] }),
      } as ControllerMocks,
      hosts: {
        'host-a': {
          readPatch: async () => ({ name: 'p1', version: 'v2', currentLevel: 'v1', timeoutSec: 60 }),
          runPatchStep: async (req: { step: 'preflight' | 'apply' | 'post' }) => over.steps?.[req.step] ?? ok,
          restartAgent: async () => ({ pid: 4242 }),
          reportHost: async () => undefined,
          ...over.host,
        } as HostMocks,
      },
    },
  };
}

describe('patchHost workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-patch-host');

  let run = 0;
  const patch = () =>
    env.client.workflow.execute<typeof patchHost>('patchHost', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: `host/host-a/${++run}`,
      args: [{ hostId: 'host-a', patch: 'p1', canary: false }],
    });
  test('maintenance, apply, agent restart, health check, post check, then back to service', async () => {
    const m = mocks();
    const result = await env.run(m.activities, patch);
    expect(result).toMatchObject({ outcome: 'patched', version: 'v2', moved: [] });
    expect(env.callsTo('host-a')).toEqual([
      'readPatch',
      'runPatchStep',
      'runPatchStep',
      'restartAgent',
      'reportHost',
      'runPatchStep',
    ]);
    expect(env.calls.indexOf('controller:beginMaintenance')).toBeLessThan(
      env.calls.indexOf('host-a:restartAgent'),
    );
    expect(env.callsTo('controller').at(-1)).toBe('endMaintenance');
    expect(m.maintenance.map((s) => s.state)).toEqual(['in-maintenance']);
  });

  test('a host already at the level, or whose pre-flight asks to skip, is left alone', async () => {
    const current = mocks({
      host: { readPatch: async () => ({ name: 'p1', version: 'v2', currentLevel: 'v2', timeoutSec: 60 }) },
    });
    expect(await env.run(current.activities, patch)).toMatchObject({
      outcome: 'skipped',
      reason: 'already at v2',
    });
    const skip = mocks({
      steps: { preflight: { exitCode: PREFLIGHT_SKIP, output: 'no such NIC', timedOut: false } },
    });
    expect(await env.run(skip.activities, patch)).toMatchObject({
      outcome: 'skipped',
      reason: 'no such NIC',
    });
    expect(env.calls).not.toContain('controller:beginMaintenance');
  });

  test('a failed apply leaves the host in maintenance, blocked with the output, never back in service', async () => {
    const m = mocks({
      steps: { apply: { exitCode: 2, output: 'dpkg: error\nhalf-configured', timedOut: false } },
    });
    const f = await env.run(m.activities, () => workflowFailure(patch()));
    expect(f.type).toBe('PatchFailedError');
    expect(f.message).toBe(
      'apply of p1 failed: exit 2: dpkg: error / half-configured (host-a left in maintenance)',
    );
    expect(m.maintenance.at(-1)).toMatchObject({
      state: 'blocked',
      reason: 'apply of p1 failed: exit 2: dpkg: error / half-configured',
    });
    expect(env.calls).not.toContain('host-a:restartAgent');
    expect(env.calls).not.toContain('controller:endMaintenance');
  });

  test('an agent that does not come back after the restart blocks the host too', async () => {
    const m = mocks();
    m.activities.controller.waitForAgentRestart = async () => {
      throw ApplicationFailure.nonRetryable(
        'host-a did not come back at v2 within 120 s',
        'AgentRestartTimeout',
      );
    };
    const f = await env.run(m.activities, () => workflowFailure(patch()));
    expect(f.message).toMatch(/^the patch run of p1 failed: .*did not come back at v2/);
    expect(m.maintenance.at(-1)?.state).toBe('blocked');
    expect(env.calls).not.toContain('controller:endMaintenance');
  });
});
