import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { auditOperations } from '../../client/audit-operations';
import { backupOperations } from '../../client/backup-operations';
import { describeError } from '../../client/cli';
import { vmOperations } from '../../client/vm-operations';
import { dataPaths, installed } from '../../domain/config';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import { createOverlay } from '../../hypervisor/qemu-img';
import { driftId } from '../../inventory/drift';
import { claimCapacity } from '../../inventory/reservations';
import { insertCreatingVm, updateVm } from '../../inventory/vms';
import { createReconcileActivities } from '../../activities/controller/reconcile-activities';
import type { HostReport } from '../../activities/host/contract';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { GUEST_IMAGE, importGuestImage, qemuOn, startBareGuest } from '../helpers/guests';

describe('the reconciler finds drift between the inventory and the hosts', () => {
  let stack: TestStack;
  let audit: ReturnType<typeof auditOperations>;
  let vms: ReturnType<typeof vmOperations>;
  const pass = async () => (await audit.run()).result();

  beforeAll(async () => {
    stack = await TestStack.create('reconcile');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-a', 'host-b']);
    await importGuestImage(stack.inventory, stack.config);
    audit = auditOperations(stack.client, stack.config);
    vms = vmOperations(stack.client, stack.config);
    await (await vms.create({ vmId: 'web', image: GUEST_IMAGE, host: 'host-a' })).result();
    await (await vms.create({ vmId: 'db', image: GUEST_IMAGE, host: 'host-b' })).result();
  });
  afterAll(() => stack.stop());

  test('a clean fleet has no drift', async () => {
    const r = await pass();
    expect(r.hosts['host-a']).toMatchObject({ found: [] });
    expect(r.hosts['host-b']).toMatchObject({ found: [] });
    expect(r.fleet).toMatchObject({ found: [] });
  });

  test('a guest killed behind our back: reported in one pass and the VM marked crashed', async () => {
    const guest = qemuOn(stack.config, 'host-a').find('web')!;
    process.kill(guest.pid, 'SIGKILL');
    while (qemuOn(stack.config, 'host-a').find('web')) await new Promise((r) => setTimeout(r, 100));

    const r = await pass();
    expect(r.hosts['host-a']).toMatchObject({
      found: [{ kind: 'vm-not-running', subject: 'vm/web', state: 'fixed' }],
    });
    expect(await stack.inventory.vms.findOne({ _id: 'web' })).toMatchObject({ state: 'crashed' });
    const events = await stack.inventory.events.find({ operation: 'reconcile', subject: 'vm/web' }).toArray();
    expect(events).toHaveLength(1);
  });

  test('a QEMU for an unknown VM: reported as an orphan and left running, until an operator fixes it', async () => {
    const qemu = qemuOn(stack.config, 'host-b');
    const stray = await startBareGuest(qemu, 'stray');

    const r = await pass();
    const id = driftId({ kind: 'orphan-process', hostId: 'host-b', subject: 'host/host-b/qemu/stray' });
    expect(r.hosts['host-b']).toMatchObject({ found: [{ id, kind: 'orphan-process', state: 'open' }] });
    expect(qemu.find('stray')?.pid).toBe(stray.pid);
    // Seen again, it is the same finding, not a new one.
    await pass();
    expect(await stack.inventory.drift.countDocuments({ kind: 'orphan-process' })).toBe(1);

    expect(await audit.fix(id)).toMatch(/stopped the QEMU of stray on host-b/);
    expect(qemu.find('stray')).toBeUndefined();
    expect(await stack.inventory.drift.findOne({ _id: id })).toMatchObject({ state: 'fixed' });
    await expect(audit.fix(id)).rejects.toThrow();
    fs.rmSync(path.join(qemu.runDir, 'stray.qcow2'), { force: true });
  });

  test('a backup file deleted by hand: reported, and no longer offered for restore', async () => {
    const backups = backupOperations(stack.client, stack.config);
    const b = await (await backups.run({ vmId: 'db' })).result();
    fs.rmSync(b.path);

    const r = await pass();
    expect(r.fleet).toMatchObject({
      found: [{ kind: 'backup-missing', subject: `backup/${b.backupId}`, state: 'fixed' }],
    });
    expect(await stack.inventory.backups.findOne({ _id: b.backupId })).toMatchObject({ state: 'missing' });
    const restore = await backups.restore({ vmId: 'db-restored', backupId: b.backupId });
    expect(describeError(await restore.result().catch((e: unknown) => e))).toMatch(/is missing, not good/);
    expect(await stack.inventory.vms.findOne({ _id: 'db-restored' })).toBeNull();
  });

  test('a reservation held by a terminated workflow is released', async () => {
    // Any workflow run can own a claim; this one waits on a host nobody serves.
    const handle = await stack.client.workflow.start('reconcileHost', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: 'reconcile/ghost',
      args: [{ hostId: 'ghost' }],
    });
    const claim = await claimCapacity(stack.inventory, {
      hostId: 'host-b',
      vmId: 'phantom',
      memoryMiB: 256,
      vcpus: 1,
      owner: `reconcile/ghost@${handle.firstExecutionRunId}`,
    });
    // Still running: the claim is legitimate and stays.
    await pass();
    expect(await stack.inventory.reservations.findOne({ _id: claim._id })).toMatchObject({ state: 'active' });

    await handle.terminate('test: the owner dies');
    const r = await pass();
    expect(r.fleet).toMatchObject({
      found: [{ kind: 'leaked-reservation', subject: `reservation/${claim._id}`, state: 'fixed' }],
    });
    expect(await stack.inventory.reservations.findOne({ _id: claim._id })).toMatchObject({
      state: 'released',
    });
  });

  test('the disks of a VM still being created are its own, not orphans', async () => {
    // A create claims the VM id first and records the disk path only at commit.
    await insertCreatingVm(stack.inventory, {
      _id: 'in-flight',
      image: GUEST_IMAGE,
      memoryMiB: 128,
      vcpus: 1,
      labels: {},
      guest: {
        firmware: 'bios',
        guestAgent: true,
        sshKeys: [],
        dataDisks: [16 * 1024 * 1024],
        cpuModel: 'qemu64',
      },
      createdByRun: 'a-run-in-flight',
    });
    const datastore = dataPaths(stack.config.dataDir).datastore;
    const files = ['in-flight.qcow2', 'in-flight.data1.qcow2'].map((f) => path.join(datastore, f));
    for (const f of files) await createOverlay(installed.guestDisk, 'qcow2', f);
    try {
      const r = await pass();
      expect((r.fleet as { found: { kind: string }[] }).found).toEqual([]);
    } finally {
      await stack.inventory.vms.deleteOne({ _id: 'in-flight' });
      for (const f of files) fs.rmSync(f, { force: true });
    }
  });

  test('a disk nobody owns is reported with the command that deletes it', async () => {
    const orphan = path.join(dataPaths(stack.config.dataDir).datastore, 'left-behind.qcow2');
    await createOverlay(installed.guestDisk, 'qcow2', orphan);
    const r = await pass();
    const found = (r.fleet as { found: { id: string; kind: string }[] }).found;
    expect(found).toEqual([expect.objectContaining({ kind: 'orphan-disk' })]);
    const drift = await stack.inventory.drift.findOne({ _id: found[0].id });
    expect(drift?.fix).toBe(`virtflow audit fix ${found[0].id}`);
    await audit.fix(found[0].id);
    expect(fs.existsSync(orphan)).toBe(false);
  });

  test('a fix derives its finding again first: an orphan that became a VM of its own is left alone', async () => {
    const qemu = qemuOn(stack.config, 'host-b');
    const late = await startBareGuest(qemu, 'late');
    try {
      await pass();
      const id = driftId({ kind: 'orphan-process', hostId: 'host-b', subject: 'host/host-b/qemu/late' });
      expect(await stack.inventory.drift.findOne({ _id: id })).toMatchObject({ state: 'open' });
      // Between the pass and the fix, the process became a recorded VM (a create that committed).
      await insertCreatingVm(stack.inventory, {
        _id: 'late',
        image: GUEST_IMAGE,
        memoryMiB: 128,
        vcpus: 1,
        labels: {},
        guest: { firmware: 'bios', guestAgent: false, sshKeys: [], dataDisks: [], cpuModel: 'qemu64' },
      });
      await stack.inventory.vms.updateOne({ _id: 'late' }, { $set: { state: 'running', host: 'host-b' } });
      expect(await audit.fix(id)).toBe('nothing done: vm late is recorded on host-b now');
      expect(qemu.find('late')?.pid).toBe(late.pid);
      expect(await stack.inventory.drift.findOne({ _id: id })).toMatchObject({ state: 'resolved' });
    } finally {
      await stack.inventory.vms.deleteOne({ _id: 'late' });
      await qemu.killConfirmed('late');
      fs.rmSync(path.join(qemu.runDir, 'late.qcow2'), { force: true });
    }
  });

  test('a migration that ended unsettled owns its VM until an operator settles it where its one copy runs', async () => {
    // As a migration run killed for good after recording its intent leaves it.
    const runId = randomUUID();
    await stack.inventory.vms.updateOne(
      { _id: 'db' },
      {
        $set: {
          migration: { target: 'host-a', workflowId: 'vm/db', runId, phase: 'verified', since: new Date() },
        },
      },
    );
    const r = await pass();
    const id = driftId({ kind: 'unfinished-migration', hostId: 'host-b', subject: 'vm/db' });
    expect(r.hosts['host-b']).toMatchObject({
      found: [{ id, kind: 'unfinished-migration', state: 'open' }],
    });
    // Nothing else touches it meanwhile: not marked crashed, and operations are refused.
    expect(await stack.inventory.vms.findOne({ _id: 'db' })).toMatchObject({
      state: 'running',
      host: 'host-b',
    });
    const stop = await vms.stop({ vmId: 'db' });
    await expect(stop.result()).rejects.toThrow();
    expect(describeError(await stop.result().catch((e: unknown) => e))).toMatch(
      /its migration to host-a \(run .*\) ended unsettled/,
    );

    expect(await audit.fix(id)).toBe('kept vm db on host-b, where its guest runs');
    const db = await stack.inventory.vms.findOne({ _id: 'db' });
    expect(db?.migration).toBeNull();
    expect(db).toMatchObject({ state: 'running', host: 'host-b' });
    expect(qemuOn(stack.config, 'host-b').find('db')).toBeDefined();
  });

  test('a host report taken before a start committed never marks the started VM crashed', async () => {
    const reconciler = createReconcileActivities(stack.inventory, async () => stack.client);
    // What host-b answered while db was not running there yet; db's start commits after that.
    const staleReport = { guests: [] } as unknown as HostReport;
    const before = await reconciler.vmRevisionsOn({ hostId: 'host-b' });
    await updateVm(stack.inventory, 'db', { state: 'running', stateReason: 'started' });
    const r = await reconciler.reconcileHostReport({ hostId: 'host-b', report: staleReport, before });
    expect(r.found).toEqual([]);
    expect(await stack.inventory.vms.findOne({ _id: 'db' })).toMatchObject({ state: 'running' });
    // The same report, with revisions read after the start: then db really looks dead.
    const after = await reconciler.vmRevisionsOn({ hostId: 'host-b' });
    const judged = await reconciler.reconcileHostReport({
      hostId: 'host-b',
      report: staleReport,
      before: after,
    });
    expect(judged.found).toEqual([expect.objectContaining({ kind: 'vm-not-running', subject: 'vm/db' })]);
    await updateVm(stack.inventory, 'db', { state: 'running', stateReason: '' });
    await pass();
  });
});
