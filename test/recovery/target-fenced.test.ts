import { MockActivityEnvironment } from '@temporalio/testing';
import { createHaActivities } from '../../activities/controller/ha-activities';
import {
  createMigrationInventoryActivities,
  type MigrationPlan,
} from '../../activities/controller/migration-inventory-activities';
import { openInventory, type Inventory } from '../../inventory/db';
import { registerHost } from '../../inventory/hosts';
import { insertCreatingVm, updateVm } from '../../inventory/vms';
import type { GuestConfig } from '../../domain/guest';
import { migrationPolicySchema } from '../../domain/migration';
import { fileConfig } from '../helpers/test-stack';

const guest: GuestConfig = {
  firmware: 'bios',
  guestAgent: false,
  sshKeys: [],
  dataDisks: [],
  cpuModel: 'qemu64',
};

/**
 * A verified migration whose target is lost before the commit, on FerretDB: the guest died with
 * the target's fence, so HA takes the VM over from the migration, and the migration's commit
 * (retried without limit) then writes nothing. The workflow's side of it (adoption rounds that
 * end on the takeover) is in test/workflows/live-migration.
 */
describe('a migration whose target is fenced after verification', () => {
  const { config } = fileConfig('target-fenced');
  let inv: Inventory;
  const ha = () => createHaActivities(inv, config);
  const migration = () => createMigrationInventoryActivities(inv);
  /** Activities as one migration run (`vm/<id>`, run `runId`) calls them. */
  const asRun = (vmId: string, runId: string) =>
    new MockActivityEnvironment({ workflowExecution: { workflowId: `vm/${vmId}`, runId } });

  const host = async (id: string, heartbeatAgoMs: number) => {
    const at = new Date(Date.now() - heartbeatAgoMs);
    await registerHost(inv, id, {
      cluster: 'rack',
      facts: {
        hostname: id,
        vcpus: 8,
        memoryMiB: 4096,
        cpuModel: 'x',
        cpuFlags: [],
        qemuVersion: '7.2.0',
        kernel: 'x',
      },
      allocatable: { memoryMiB: 4096, vcpus: 8 },
      patchLevel: '0',
      agent: {
        version: 'x',
        pid: 1,
        startedAt: at,
        heartbeatAt: at,
        taskQueue: `host/${id}`,
        factsIntervalMs: 5_000,
      },
      migrationPorts: { first: 50000, last: 50010 },
      migrationAddress: '127.0.0.1',
    });
  };

  /** An HA VM on host-a whose migration to host-b (run `runId`) has verified its guest there. */
  const verifiedMigration = async (vmId: string, runId: string): Promise<MigrationPlan> => {
    await insertCreatingVm(inv, { _id: vmId, image: 'img', memoryMiB: 256, vcpus: 1, labels: {}, guest });
    await updateVm(inv, vmId, {
      state: 'running',
      host: 'host-a',
      ha: { enabled: true, priority: 1 },
      migration: { target: 'host-b', workflowId: `vm/${vmId}`, runId, phase: 'verified', since: new Date() },
    });
    return {
      vmId,
      source: 'host-a',
      target: 'host-b',
      memoryMiB: 256,
      vcpus: 1,
      diskPath: `/datastore/${vmId}.qcow2`,
      guest,
      policy: migrationPolicySchema.parse({}),
    };
  };

  beforeAll(async () => {
    // A fresh database, then opened again so its indexes exist.
    const stale = await openInventory(config);
    await stale.db.dropDatabase();
    await stale.close();
    inv = await openInventory(config);
    await host('host-a', 0);
    // host-b's agent stopped answering a minute ago: three fact intervals of 5 s are long past.
    await host('host-b', 60_000);
  });
  afterAll(() => inv.close());

  test('HA counts the guest where it runs, takes the VM over at the fence, and the commit then writes nothing', async () => {
    const plan = await verifiedMigration('moved', 'run-1');
    // host-b holds no VM by the record, but the verified guest of an HA VM runs there.
    expect(await ha().lostHosts()).toEqual(['host-b']);

    const candidates = await ha().recordHostFenced({ hostId: 'host-b' });
    expect(candidates.map((c) => c.vmId)).toEqual(['moved']);
    const taken = await inv.vms.findOne({ _id: 'moved' });
    expect(taken).toMatchObject({ host: 'host-b', state: 'crashed', migration: null });
    expect(taken?.stateReason).toMatch(/host-b was fenced after the migration from host-a was verified/);

    const run = asRun('moved', 'run-1');
    expect(await run.run(migration().migrationTakenOver, { plan })).toBe(true);
    expect(await run.run(migration().commitMigration, { plan, details: {} })).toBe('taken-over');
    expect(await inv.vms.findOne({ _id: 'moved' })).toMatchObject({
      host: 'host-b',
      state: 'crashed',
      revision: taken!.revision,
    });
  });

  test('a commit that landed is recognised on retry, and fencing the source leaves a verified VM to its migration', async () => {
    const plan = await verifiedMigration('kept', 'run-2');
    // The source's fence does not touch a guest that already runs on the target.
    expect(await ha().recordHostFenced({ hostId: 'host-a' })).toEqual([]);
    expect(await inv.vms.findOne({ _id: 'kept' })).toMatchObject({ host: 'host-a', state: 'running' });

    const run = asRun('kept', 'run-2');
    expect(await run.run(migration().commitMigration, { plan, details: {} })).toBe('committed');
    const committed = await inv.vms.findOne({ _id: 'kept' });
    expect(committed).toMatchObject({
      host: 'host-b',
      state: 'running',
      migration: null,
      migratedBy: 'run-2',
    });
    // A retry (its first attempt's answer was lost) writes nothing more and still reports the commit.
    expect(await run.run(migration().commitMigration, { plan, details: {} })).toBe('committed');
    expect((await inv.vms.findOne({ _id: 'kept' }))?.revision).toBe(committed!.revision);
    expect(await run.run(migration().migrationTakenOver, { plan })).toBe(false);
    // Another run's commit is refused: the VM is not its to move.
    expect(await asRun('kept', 'run-3').run(migration().commitMigration, { plan, details: {} })).toBe(
      'taken-over',
    );
  });
});
