import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

const GiB = 1024 ** 3;

/** A running VM `db` on host-a with a 10 GiB root disk and a 1 GiB data disk, as recorded. */
function mocks(over: { controller?: ControllerMocks; host?: HostMocks } = {}) {
  const restored: number[][] = [];
  return {
    restored,
    activities: {
      controller: {
        beginVmOperation: async () => ({ _id: 'db', state: 'running', host: 'host-a', stateReason: '' }),
        claimDiskGrowth: async () => [10 * GiB, GiB],
        restoreDiskRecord: async (req: { diskBytes: number[] }) => {
          restored.push(req.diskBytes);
        },
        recordVmOutcome: async () => undefined,
        ...over.controller,
      } as ControllerMocks,
      hosts: {
        'host-a': {
          resizeDisk: async (req: { sizeBytes: number }) => ({
            previousBytes: GiB,
            sizeBytes: req.sizeBytes,
            online: true,
          }),
          ...over.host,
        } as HostMocks,
      },
    },
  };
}

describe('resizeDisk (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-resize-disk');
  const run = () =>
    env.client.workflow.execute('resizeDisk', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.vm('db'),
      args: [{ vmId: 'db', disk: 1, sizeBytes: 2 * GiB }],
    });

  test('the growth is claimed in the quota and recorded before the host grows the disk', async () => {
    const m = mocks();
    expect(await env.run(m.activities, run)).toMatchObject({ previousBytes: GiB, sizeBytes: 2 * GiB });
    expect(env.callsTo('controller')).toEqual(['beginVmOperation', 'claimDiskGrowth', 'recordVmOutcome']);
    expect(env.callsTo('host-a')).toEqual(['resizeDisk']);
    expect(m.restored).toEqual([]);
  });

  test('a growth the quota has no room for never reaches the host', async () => {
    const m = mocks({
      controller: {
        claimDiskGrowth: async () => {
          throw ApplicationFailure.nonRetryable(
            'project web has no room for vm db: diskGiB: …',
            'QuotaExceededError',
          );
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(run()));
    expect(failure.message).toMatch(/no room for vm db/);
    expect(env.callsTo('host-a')).toEqual([]);
    expect(env.calls).not.toContain('controller:recordVmOutcome');
  });

  test('a growth the host refuses puts the disks back as they were recorded', async () => {
    const m = mocks({
      host: {
        resizeDisk: async () => {
          throw ApplicationFailure.nonRetryable('block_resize: the disk is locked', 'QmpError');
        },
      },
    });
    const failure = await env.run(m.activities, () => workflowFailure(run()));
    expect(failure.message).toMatch(/the disk is locked/);
    expect(m.restored).toEqual([[10 * GiB, GiB]]);
    expect(env.calls).not.toContain('controller:recordVmOutcome');
  });
});
