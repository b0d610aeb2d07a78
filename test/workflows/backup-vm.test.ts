import { ApplicationFailure } from '@temporalio/common';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../../domain/names';
import type { backupVm } from '../../workflows/backup-vm';
import { workflowFailure } from '../helpers/run-outcomes';
import { MockedActivities, type ControllerMocks, type HostMocks } from '../helpers/mocked-activities';

const previous = { bitmap: 'vf-chain-1', path: '/backups/app/b1.qcow2' };
const bitmapOk = { name: 'vf-chain-1', inconsistent: false, recording: true };

/** `app` runs on host-a and has a chain with one backup; tests override steps. */
function mocks(over: { controller?: ControllerMocks; host?: HostMocks } = {}) {
  const catalogued: {
    started?: { kind: string; fullReason: string | null };
    failed?: string;
    finished?: boolean;
  } = {};
  const pruned: string[] = [];
  return {
    catalogued,
    pruned,
    activities: {
      controller: {
        planBackup: async () => ({
          vmId: 'app',
          host: 'host-a',
          running: true,
          diskPath: '/datastore/app.qcow2',
          previous,
          fullReason: null,
        }),
        catalogBackupStarted: async (req: { kind: 'full' | 'incremental'; fullReason: string | null }) => {
          catalogued.started = { kind: req.kind, fullReason: req.fullReason };
          return {
            backupId: 'b2',
            kind: req.kind,
            bitmap: 'vf-chain-1',
            chainId: 'chain-1',
            targetPath: '/backups/app/b2.qcow2',
            parentPath: req.kind === 'incremental' ? previous.path : undefined,
            virtualSizeBytes: 1 << 30,
          };
        },
        catalogBackupFinished: async () => {
          catalogued.finished = true;
        },
        catalogBackupFailed: async (req: { reason: string }) => {
          catalogued.failed = req.reason;
        },
        planPrune: async () => ({ keep: [], prune: [{ id: 'b0', path: '/backups/app/b0.qcow2' }] }),
        pickWorkingHost: async () => 'host-a',
        markBackupPruned: async (req: { backupId: string }) => {
          pruned.push(req.backupId);
        },
        ...over.controller,
      } as ControllerMocks,
      hosts: {
        'host-a': {
          inspectLineage: async () => ({ parentExists: true, bitmaps: [bitmapOk] }),
          runBackup: async () => ({
            sizeBytes: 4 << 20,
            sha256: 'ab'.repeat(32),
            durationMs: 900,
            copyMs: 400,
          }),
          deleteBackupFile: async () => undefined,
          ...over.host,
        } as HostMocks,
      },
    },
  };
}

describe('backupVm workflow branches (mocked activities)', () => {
  const env = MockedActivities.forFile('wf-backup-vm');

  let run = 0;
  const backup = (retention?: { keepLast: number }) =>
    env.client.workflow.execute<typeof backupVm>('backupVm', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: workflowIds.vm(`app-${++run}`),
      args: [{ vmId: 'app', retention } as Parameters<typeof backupVm>[0]],
    });

  test('an intact lineage gives an incremental, catalogued running first and good only after its facts', async () => {
    const m = mocks();
    const result = await env.run(m.activities, () => backup());
    expect(result).toMatchObject({ kind: 'incremental', fullReason: null, backupId: 'b2', pruned: [] });
    const controller = env.callsTo('controller');
    expect(controller.indexOf('catalogBackupStarted')).toBeLessThan(
      controller.indexOf('catalogBackupFinished'),
    );
    expect(env.callsTo('host-a')).toEqual(['inspectLineage', 'runBackup']);
  });

  test('a dirty bitmap the VM lost makes the next backup full, with the reason recorded', async () => {
    const m = mocks({ host: { inspectLineage: async () => ({ parentExists: true, bitmaps: [] }) } });
    const result = await env.run(m.activities, () => backup());
    expect(result.kind).toBe('full');
    expect(m.catalogued.started).toEqual({
      kind: 'full',
      fullReason: expect.stringMatching(/^dirty bitmap vf-chain-1 is not on the disk/),
    });
  });

  test('a copy that fails removes the partial file and catalogues the failure, never a good backup', async () => {
    const m = mocks({
      host: {
        runBackup: async () => {
          throw ApplicationFailure.nonRetryable('block job failed: No space left on device', 'BackupFailed');
        },
      },
    });
    await env.run(m.activities, () => workflowFailure(backup()));
    expect(env.callsTo('host-a')).toEqual(['inspectLineage', 'runBackup', 'deleteBackupFile']);
    expect(m.catalogued.failed).toMatch(/No space left on device/);
    expect(m.catalogued.finished).toBeUndefined();
  });

  test('with retention, each pruned file is deleted before it is marked pruned', async () => {
    const m = mocks();
    const result = await env.run(m.activities, () => backup({ keepLast: 1 }));
    expect(result.pruned).toEqual(['b0']);
    expect(m.pruned).toEqual(['b0']);
    expect(env.calls.indexOf('host-a:deleteBackupFile')).toBeLessThan(
      env.calls.indexOf('controller:markBackupPruned'),
    );
  });
});
