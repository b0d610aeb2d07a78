import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { backupOperations } from '../../client/backup-operations';
import { vmOperations } from '../../client/vm-operations';
import { withGuestAgent } from '../../hypervisor/guest-agent';
import { diskWriter } from '../../scripts/guest/workloads';
import { TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';

type Failure = { cause?: { type?: string; message?: string } };

function identical(a: string, b: string): boolean {
  try {
    // -U: the disk may be in use by its running guest.
    execFileSync('qemu-img', ['compare', '-q', '-U', a, b]);
    return true;
  } catch {
    return false;
  }
}

describe('backups of a running guest, and restores', () => {
  let stack: TestStack;
  let vms: ReturnType<typeof vmOperations>;
  let backups: ReturnType<typeof backupOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('backup-restore');
    await stack.startControllerProcess();
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    vms = vmOperations(stack.client, stack.config);
    backups = backupOperations(stack.client, stack.config);
    // The guest writes a block to its disk every second.
    await (
      await vms.create({ vmId: 'db', image: GUEST_IMAGE, host: 'host-a', userData: diskWriter })
    ).result();
  });
  afterAll(() => stack.stop());

  test('full, then incremental after the guest wrote; the incremental restores to identical bytes and boots', async () => {
    const full = await (await backups.run({ vmId: 'db' })).result();
    expect(full).toMatchObject({ kind: 'full', fullReason: 'first backup of this VM' });
    await new Promise((r) => setTimeout(r, 3000));
    const inc = await (await backups.run({ vmId: 'db' })).result();
    expect(inc.kind).toBe('incremental');
    expect(inc.chainId).toBe(full.chainId);
    // Only what changed was copied, and it really changed.
    expect(inc.sizeBytes).toBeLessThan(full.sizeBytes);
    expect(identical(full.path, inc.path)).toBe(false);
    const doc = await stack.inventory.backups.findOne({ _id: inc.backupId });
    expect(doc).toMatchObject({
      state: 'good',
      kind: 'incremental',
      parentId: full.backupId,
      // The guest agent froze the file systems for the backups' point in time, and thawed them.
      consistency: 'application-consistent',
    });
    const agentSocket = qemuOn(stack.config, 'host-a').files('db').agentSocket;
    expect(await withGuestAgent(agentSocket, 5000, (a) => a.execute('guest-fsfreeze-status'))).toBe('thawed');
    expect(doc!.sha256).toMatch(/^[0-9a-f]{64}$/);

    // Without the disk writer, so the restored disk stays as restored while we compare it.
    const restored = await (
      await backups.restore({ backupId: inc.backupId, vmId: 'db-restored', userData: '' })
    ).result();
    expect(identical(inc.path, restored.diskPath)).toBe(true);
    expect(hostsRunning(stack.config, 'db-restored', ['host-a', 'host-b'])).toEqual([restored.host]);
    await freshHeartbeat(stack.config, restored.host, 'db-restored');
    expect(await stack.inventory.vms.findOne({ _id: 'db-restored' })).toMatchObject({
      state: 'running',
      host: restored.host,
    });

    const verified = await (await backups.verify(inc.backupId)).result();
    expect(verified.verified).toEqual([inc.backupId, full.backupId]);
  });

  test('a missing parent file breaks the lineage: the next run takes a full backup and records why', async () => {
    const latest = await stack.inventory.backups
      .find({ vmId: 'db', state: 'good' })
      .sort({ finishedAt: -1 })
      .limit(1)
      .next();
    fs.rmSync(latest!.path);
    const next = await (await backups.run({ vmId: 'db' })).result();
    expect(next.kind).toBe('full');
    expect(next.fullReason).toBe(`the parent backup file ${latest!.path} is missing`);
    expect(await stack.inventory.backups.findOne({ _id: next.backupId })).toMatchObject({
      fullReason: next.fullReason,
      state: 'good',
    });
    const after = await (await backups.run({ vmId: 'db' })).result();
    expect(after).toMatchObject({ kind: 'incremental', chainId: next.chainId });
  });

  test('a backup that fails once its copy began breaks the chain: the next is full, says why, and restores identical', async () => {
    // Slow enough to be cancelled mid-copy: QEMU may already have cleared the bitmap's record.
    const op = await backups.run({ vmId: 'db', full: true, maxSpeedMiBps: 1 });
    await until('the copy to begin', async () => stack.inventory.backups.findOne({ state: 'running' }));
    await op.handle.cancel();
    await expect(op.result()).rejects.toThrow();
    const failed = await until(
      'the attempt to be catalogued failed',
      async () =>
        (await stack.inventory.backups.findOne({ state: 'failed' }, { sort: { startedAt: -1 } })) ??
        undefined,
    );
    expect(fs.existsSync(failed.path)).toBe(false);

    const next = await (await backups.run({ vmId: 'db' })).result();
    expect(next.kind).toBe('full');
    expect(next.fullReason).toMatch(new RegExp(`^the last attempt \\(${failed._id}\\) failed`));
    const restored = await (
      await backups.restore({ backupId: next.backupId, vmId: 'db-after-failure', userData: '' })
    ).result();
    expect(identical(next.path, restored.diskPath)).toBe(true);
    // Once a good backup follows, incrementals resume on the new chain.
    const after = await (await backups.run({ vmId: 'db' })).result();
    expect(after).toMatchObject({ kind: 'incremental', chainId: next.chainId });
  });

  test('bad requests are rejected before anything is created', async () => {
    await expect(backups.run({ vmId: 'No/Such' })).rejects.toThrow(/^vmId: must be a DNS label/);
    const unknown = (await (
      await backups.run({ vmId: 'ghost' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(unknown.cause?.type).toBe('NotFoundError');
    await expect(backups.prune('db', { keepLast: -1 }, true)).rejects.toThrow(
      /^retention\.keepLast: must not be negative/,
    );
    const bogus = (await (
      await backups.restore({ backupId: 'nope', vmId: 'x1' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(bogus.cause?.message).toMatch(/^backupId: no backup named "nope"/);
    expect(await stack.inventory.vms.findOne({ _id: 'x1' })).toBeNull();
    expect(await stack.inventory.backups.countDocuments({ vmId: 'ghost' })).toBe(0);
  });
});
