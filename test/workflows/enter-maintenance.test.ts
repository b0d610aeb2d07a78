import { InsufficientCapacityError } from '../../domain/errors';
import { sendControl } from '../../client/updates';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import type { enterMaintenance } from '../../workflows/enter-maintenance';
import { resolveBlocked } from '../../workflows/maintenance-control';
import { progressQuery } from '../../workflows/observability';
import { deferred } from '../helpers/deferred';
import { refusal } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks } from '../helpers/mocked-activities';
import { until } from '../helpers/until';

/** host-a runs app-1, which no other host can take until the test says otherwise. */
function mocks(
  opts: { begin?: Promise<void>; recordingBlocked?: Promise<void>; afterOperator?: 'gone' } = {},
) {
  const states: string[] = [];
  let operatorAnswered = false;
  const controller: ControllerMocks = {
    beginMaintenance: async () => {
      await opts.begin;
      return { running: ['app-1'], stopped: [] };
    },
    chooseEvacuationTarget: async () => {
      if (operatorAnswered && opts.afterOperator === 'gone') return { gone: 'deleted meanwhile' };
      throw new InsufficientCapacityError('vm app-1', { 'host-b': ['needs 4096 MiB memory, 512 MiB free'] });
    },
    setMaintenanceState: async (req: { state: string }) => {
      if (req.state === 'blocked') await opts.recordingBlocked;
      states.push(req.state);
      if (req.state === 'entering') operatorAnswered = true;
    },
    vmsOn: async () => ({ running: [], stopped: [] }),
    beginVmOperation: async () => ({ _id: 'app-1', host: 'host-a' }),
    recordVmOutcome: async () => undefined,
  };
  return {
    states,
    activities: {
      controller,
      hosts: { 'host-a': { stopGuest: async () => ({ how: 'graceful' }) } },
    },
  };
}

describe('enterMaintenance workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-enter-maintenance');

  let run = 0;
  const enter = () =>
    env.client.workflow.start<typeof enterMaintenance>('enterMaintenance', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: `host/host-a/${++run}`,
      args: [{ hostId: 'host-a', retriesPerVm: 1 }],
    });

  test('a VM no host can take blocks the host, never stopped silently; resolve is validated; retry finishes', async () => {
    const begin = deferred();
    const m = mocks({ begin: begin.promise, afterOperator: 'gone' });
    await env.run(m.activities, async () => {
      const handle = await enter();
      await until('marking', async () => (await handle.query(progressQuery)).phase === 'marking');
      expect(
        await refusal(
          sendControl(() => handle.executeUpdate(resolveBlocked, { args: [{ action: 'retry' }] })),
        ),
      ).toBe('host host-a is not blocked');
      begin.resolve();
      const blocked = await until('blocked', async () => {
        const p = await handle.query(progressQuery);
        return p.phase === 'blocked' && p;
      });
      expect(blocked.message).toMatch(/^waiting for an operator: app-1: .*needs 4096 MiB memory/);
      expect(
        await refusal(
          sendControl(() =>
            handle.executeUpdate(resolveBlocked, { args: [{ action: 'reboot' as 'retry' }] }),
          ),
        ),
      ).toBe('action: must be retry or stop-them');
      await sendControl(() => handle.executeUpdate(resolveBlocked, { args: [{ action: 'retry' }] }));
      expect(await handle.result()).toEqual({ hostId: 'host-a', moved: [], stopped: [], notRunning: [] });
    });
    expect(m.states).toEqual(['blocked', 'entering', 'in-maintenance']);
    expect(env.calls).not.toContain('host-a:stopGuest');
  });

  test('stop-them, even while the blocked state is still being recorded, stops the VM through its own stop workflow', async () => {
    // The operator answers as soon as the host shows blocked, before its state is in the inventory:
    // the answer must count (it was once overwritten when the recording finished, and the host
    // stayed blocked for good).
    const recording = deferred();
    const m = mocks({ recordingBlocked: recording.promise });
    await env.run(m.activities, async () => {
      const handle = await enter();
      await until('blocked', async () => (await handle.query(progressQuery)).phase === 'blocked');
      expect(
        await sendControl(() => handle.executeUpdate(resolveBlocked, { args: [{ action: 'stop-them' }] })),
      ).toBe('stop-them for app-1');
      recording.resolve();
      expect(await handle.result()).toMatchObject({ moved: [], stopped: ['app-1'] });
    });
    expect(env.callsTo('host-a')).toEqual(['stopGuest']);
    expect(m.states).toEqual(['blocked', 'entering', 'in-maintenance']);
  });
});
