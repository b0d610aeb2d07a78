import { ApplicationFailure } from '@temporalio/common';
import { InsufficientCapacityError, parseInput } from '../../domain/errors';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import type { PlacementDecision } from '../../domain/placement';
import { createVmRequestSchema, type CreateVmRequest } from '../../domain/requests';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

const decision = (chosen: string): PlacementDecision => ({
  chosen,
  ranked: [{ host: chosen, score: 1 }],
  rejected: {},
});

/** A create that succeeds on whichever host placement names; tests override steps. */
function mocks(over: { controller?: ControllerMocks; host?: HostMocks } = {}) {
  const abandoned: string[] = [];
  const host: HostMocks = {
    prepareDisk: async () => ({ diskPath: '/datastore/app.qcow2' }),
    startGuest: async () => ({ pid: 1 }),
    waitForGuestBoot: async () => ({ heartbeatSeq: null, via: 'guest-agent' }),
    destroyGuest: async () => undefined,
    deleteDisk: async () => undefined,
    ...over.host,
  };
  return {
    abandoned,
    activities: {
      controller: {
        beginCreateVm: async (input: CreateVmRequest) => ({
          spec: {
            ...parseInput(createVmRequestSchema, input, ''),
            guest: { firmware: 'bios', guestAgent: true, sshKeys: [] },
          },
          image: { id: 'debian', path: '/images/debian.qcow2' },
        }),
        placeVm: async () => decision('host-a'),
        claimCapacity: async () => 'claim-1',
        commitVmCreated: async () => undefined,
        abandonVmCreate: async (req: { reason: string }) => {
          abandoned.push(req.reason);
        },
        ...over.controller,
      } as ControllerMocks,
      hosts: { 'host-a': host, 'host-b': host },
    },
  };
}

describe('createVm workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-create-vm');

  const create = (vmId: string, req: Partial<CreateVmRequest> = {}) =>
    env.client.workflow.execute('createVm', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.vm(vmId),
      args: [{ vmId, image: 'debian', ...req }],
    });
  test('places, claims, makes the disk, boots, and commits only once the guest agent answered', async () => {
    const m = mocks();
    const result = await env.run(m.activities, () => create('app'));
    expect(result).toEqual({
      vmId: 'app',
      host: 'host-a',
      diskPath: '/datastore/app.qcow2',
      verifiedBy: 'guest-agent',
      heartbeatSeq: null,
    });
    expect(env.callsTo('host-a')).toEqual(['prepareDisk', 'startGuest', 'waitForGuestBoot']);
    expect(env.callsTo('controller')).toEqual([
      'beginCreateVm',
      'placeVm',
      'claimCapacity',
      'commitVmCreated',
    ]);
  });

  test('bad input is refused by the first step, naming the field, before anything is placed', async () => {
    const m = mocks();
    const failure = await env.run(m.activities, () =>
      workflowFailure(create('bad-input', { memoryMiB: 8 } as Partial<CreateVmRequest>)),
    );
    expect(failure.type).toBe('ValidationError');
    expect(failure.message).toMatch(/^memoryMiB: /);
    expect(env.callsTo('controller')).toEqual(['beginCreateVm']);
    expect(env.callsTo('host-a')).toEqual([]);
  });

  test('a claim lost to a concurrent create places again, on the host placement now names', async () => {
    let placements = 0;
    const m = mocks({
      controller: {
        placeVm: async () => decision(++placements === 1 ? 'host-a' : 'host-b'),
        claimCapacity: async (req: { hostId: string }) => {
          if (req.hostId === 'host-a')
            throw new InsufficientCapacityError('vm race', { 'host-a': ['taken by a concurrent claim'] });
          return 'claim-2';
        },
      },
    });
    const result = await env.run(m.activities, () => create('race'));
    expect(result.host).toBe('host-b');
    expect(env.callsTo('controller').filter((c) => c === 'placeVm')).toHaveLength(2);
    expect(env.callsTo('host-a')).toEqual([]);
  });

  test('a guest that never boots is undone: destroyed, its disk deleted, the VM forgotten, nothing committed', async () => {
    const m = mocks({
      host: {
        waitForGuestBoot: async () => {
          throw ApplicationFailure.nonRetryable('no heartbeat within 180 s', 'BootTimeout');
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(create('no-boot')));
    expect(failure.message).toMatch(/no heartbeat within 180 s/);
    expect(env.callsTo('host-a')).toEqual([
      'prepareDisk',
      'startGuest',
      'waitForGuestBoot',
      'destroyGuest',
      'deleteDisk',
    ]);
    expect(env.calls).not.toContain('controller:commitVmCreated');
    expect(m.abandoned).toEqual(['no heartbeat within 180 s']);
  });

  test('a host lost during the undo still forgets the VM, and says the cleanup is pending', async () => {
    const m = mocks({
      host: {
        startGuest: async () => {
          throw ApplicationFailure.nonRetryable('QEMU exited: could not open disk', 'QemuStartFailed');
        },
        destroyGuest: async () => {
          throw ApplicationFailure.nonRetryable('agent gone', 'HostUnreachable');
        },
      },
    });
    await env.run(m.activities, () => workflowFailure(create('lost-host')));
    expect(m.abandoned).toHaveLength(1);
    expect(m.abandoned[0]).toMatch(
      /^QEMU exited: could not open disk; cleanup on host-a is pending: agent gone/,
    );
    expect(env.calls).not.toContain('host-a:deleteDisk');
  });
});
