import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import type { NicConfig } from '../../domain/network';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

const nic: NicConfig = {
  network: 'lab',
  mac: '0a:76:66:00:00:07',
  ip: '10.20.0.7',
  prefix: 24,
  dns: [],
  kind: 'bridge',
  uplink: 'uplink0',
  slot: 1,
};

/** A VM `web` in `state` on host-a; tests override steps. */
function mocks(state: 'running' | 'stopped', over: { controller?: ControllerMocks; host?: HostMocks } = {}) {
  const released: string[] = [];
  const host: HostMocks = {
    hotplugNic: async () => ({ device: 'nic-000007', tap: 'vft66000007', guest: 'configured in the guest' }),
    unplugNic: async () => ({ removed: true }),
    ...over.host,
  };
  return {
    released,
    activities: {
      controller: {
        beginVmOperation: async () => ({ _id: 'web', state, host: 'host-a', stateReason: '' }),
        allocateVmNic: async () => nic,
        recordNicAdded: async () => undefined,
        releaseVmNic: async (req: { reason: string }) => {
          released.push(req.reason);
        },
        nicToRemove: async () => ({ vm: { _id: 'web', state, host: 'host-a' }, nic }),
        recordNicRemoved: async () => undefined,
        ...over.controller,
      } as ControllerMocks,
      hosts: { 'host-a': host },
    },
  };
}

describe('NIC workflows (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-vm-nics');
  const run = (workflow: 'addNic' | 'removeNic', args: Record<string, unknown>) =>
    env.client.workflow.execute(workflow, {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.vm('web'),
      args: [{ vmId: 'web', network: 'lab', ...args }],
    });

  test('a running VM: claim, hot-plug, then record', async () => {
    const running = await env.run(mocks('running').activities, () => run('addNic', {}));
    expect(running).toMatchObject({ live: true, guest: 'configured in the guest', nic: { mac: nic.mac } });
    expect(env.callsTo('controller')).toEqual(['beginVmOperation', 'allocateVmNic', 'recordNicAdded']);
    expect(env.callsTo('host-a')).toEqual(['hotplugNic']);
  });

  test('a stopped VM: only recorded, for its next start', async () => {
    const stopped = await env.run(mocks('stopped').activities, () => run('addNic', {}));
    expect(stopped).toMatchObject({ live: false, guest: 'the guest gets it at its next start' });
    expect(env.callsTo('host-a')).toEqual([]);
  });

  test('a hot-plug that fails is undone: unplugged, its claims given back, nothing recorded', async () => {
    const m = mocks('running', {
      host: {
        hotplugNic: async () => {
          throw ApplicationFailure.nonRetryable('device_add: no free PCI slot', 'QmpError');
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(run('addNic', {})));
    expect(failure.message).toMatch(/no free PCI slot/);
    expect(env.callsTo('host-a')).toEqual(['hotplugNic', 'unplugNic']);
    expect(env.calls).not.toContain('controller:recordNicAdded');
    expect(m.released).toEqual(['device_add: no free PCI slot']);
  });

  test('a refused claim changes nothing: no host call, nothing to give back', async () => {
    const m = mocks('running', {
      controller: {
        allocateVmNic: async () => {
          throw ApplicationFailure.nonRetryable(
            'ip: 10.20.0.7 on network lab is taken by vm db',
            'ValidationError',
          );
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(run('addNic', { ip: '10.20.0.7' })));
    expect(failure).toMatchObject({
      type: 'ValidationError',
      message: 'ip: 10.20.0.7 on network lab is taken by vm db',
    });
    expect(env.callsTo('host-a')).toEqual([]);
    expect(m.released).toEqual([]);
  });

  test('a guest that does not release the NIC keeps it: nothing is forgotten', async () => {
    const m = mocks('running', {
      host: {
        unplugNic: async () => {
          throw ApplicationFailure.nonRetryable(
            'the guest did not release NIC 0a:76:66:00:00:07',
            'GuestRefusedError',
          );
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(run('removeNic', {})));
    expect(failure.message).toMatch(/did not release/);
    expect(env.calls).not.toContain('controller:recordNicRemoved');
  });
});
