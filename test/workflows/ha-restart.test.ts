import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import type { PlacementDecision } from '../../domain/placement';
import type { haRestart } from '../../workflows/ha-restart';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

const decision = (chosen: string): PlacementDecision => ({ chosen, ranked: [], rejected: {} });
const vmDoc = (vmId: string) => ({
  _id: vmId,
  host: 'host-c',
  memoryMiB: 128,
  vcpus: 1,
  diskPath: `/datastore/${vmId}.qcow2`,
  guest: { firmware: 'bios' as const, guestAgent: true, sshKeys: [] },
});

/** host-c is lost and holds three HA VMs; host-a takes every restart. Tests override steps. */
function mocks(over: { controller?: ControllerMocks; target?: HostMocks; lost?: HostMocks } = {}) {
  const marked: string[] = [];
  const failedRestarts: string[] = [];
  return {
    marked,
    failedRestarts,
    activities: {
      controller: {
        confirmHostLost: async () => ({ lost: true, reason: 'its agent missed 3 fact intervals' }),
        fenceHost: async () => 'fenced host-c: killed 4 process(es)',
        markNeedsOperator: async (req: { reason: string }) => {
          marked.push(req.reason);
        },
        recordHostFenced: async () => [
          { vmId: 'app', priority: 5 },
          { vmId: 'db', priority: 10 },
          { vmId: 'web', priority: 5 },
        ],
        beginVmOperation: async (req: { vmId: string }) => vmDoc(req.vmId),
        placeHaRestart: async () => decision('host-a'),
        claimCapacity: async () => 'claim',
        commitHaRestart: async () => undefined,
        recordHaRestartFailed: async (req: { vmId: string }) => {
          failedRestarts.push(req.vmId);
        },
        recordFenceAverted: async () => undefined,
        ...over.controller,
      } as ControllerMocks,
      hosts: {
        'host-a': {
          startGuest: async () => ({ pid: 1 }),
          waitForGuestBoot: async () => ({ heartbeatSeq: 1 }),
          destroyGuest: async () => undefined,
          ...over.target,
        } as HostMocks,
        // The lost host's agent cannot report its host when the controller probes it.
        'host-c': {
          reportHost: async () => {
            throw ApplicationFailure.nonRetryable('QMP of every guest timed out', 'QmpError');
          },
          ...over.lost,
        } as HostMocks,
      },
    },
  };
}

describe('haRestart workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-ha-restart');

  let run = 0;
  const lose = () =>
    env.client.workflow.execute<typeof haRestart>('haRestart', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: `host/host-c/${++run}`,
      args: [{ hostId: 'host-c' }],
    });

  test('a fence that fails restarts nothing and leaves the host to an operator', async () => {
    const m = mocks({
      controller: {
        fenceHost: async () => {
          throw ApplicationFailure.nonRetryable('exit 1: power controller did not answer', 'FenceFailed');
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(lose()));
    expect(failure).toMatchObject({
      type: 'FenceFailedError',
      message: expect.stringMatching(
        /^host host-c needs an operator: the fence failed .*none of its VMs was restarted/,
      ),
    });
    expect(m.marked).toEqual([expect.stringMatching(/^fence failed: .*power controller did not answer/)]);
    expect(env.calls).not.toContain('controller:recordHostFenced');
    expect(env.callsTo('host-a')).toEqual([]);
  });

  test('a host that answers again is not fenced', async () => {
    const m = mocks({
      controller: { confirmHostLost: async () => ({ lost: false, reason: 'its agent answers again' }) },
    });
    const result = await env.run(m.activities, lose);
    expect(result).toMatchObject({ outcome: 'recovered', restarted: [], reason: 'its agent answers again' });
    expect(env.calls).not.toContain('controller:fenceHost');
  });

  test('an agent that still reports its host on its own task queue is not fenced, however late its heartbeat', async () => {
    const m = mocks({ lost: { reportHost: async () => ({ hostId: 'host-c', guests: [] }) } });
    const result = await env.run(m.activities, lose);
    expect(result).toMatchObject({
      outcome: 'recovered',
      restarted: [],
      reason: 'its agent answered on its task queue (its agent missed 3 fact intervals in the database)',
    });
    expect(env.calls).toContain('controller:recordFenceAverted');
    expect(env.calls).not.toContain('controller:fenceHost');
  });

  test('after the fence, VMs restart in waves by priority; one that cannot boot is cleaned up and reported', async () => {
    const started: string[] = [];
    const m = mocks({
      target: {
        startGuest: async (req: { vmId: string }) => {
          started.push(req.vmId);
          return { pid: 1 };
        },
        waitForGuestBoot: async (req: { vmId: string }) => {
          if (req.vmId === 'web')
            throw ApplicationFailure.nonRetryable('no heartbeat within 180 s', 'BootTimeout');
          return { heartbeatSeq: 1 };
        },
      },
    });
    const result = await env.run(m.activities, lose);
    expect(result.outcome).toBe('restarted');
    expect(result.restarted.map((r) => r.vmId).sort()).toEqual(['app', 'db']);
    expect(result.failed).toEqual([
      { vmId: 'web', reason: expect.stringMatching(/no heartbeat within 180 s/) },
    ]);
    expect(m.failedRestarts).toEqual(['web']);
    // db (priority 10) was up and committed before anything of priority 5 started.
    expect(started[0]).toBe('db');
    expect(started.slice(1).sort()).toEqual(['app', 'web']);
    const order = env.calls.filter((c) => c === 'host-a:startGuest' || c === 'controller:commitHaRestart');
    expect(order.slice(0, 2)).toEqual(['host-a:startGuest', 'controller:commitHaRestart']);
    expect(env.callsTo('host-a')).toContain('destroyGuest');
    expect(env.calls.indexOf('controller:fenceHost')).toBeLessThan(env.calls.indexOf('host-a:startGuest'));
    expect(env.calls.indexOf('host-c:reportHost')).toBeLessThan(env.calls.indexOf('controller:fenceHost'));
  });
});
