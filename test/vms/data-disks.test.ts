import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupOperations } from '../../client/backup-operations';
import { vmOperations } from '../../client/vm-operations';
import { dataPaths } from '../../domain/config';
import { readGuestFile } from '../../hypervisor/guest-agent';
import { vmFiles } from '../../hypervisor/vm-files';
import { dataDiskWriter } from '../../scripts/guest/workloads';
import { GUEST_IMAGE, hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';
import { committedMigration } from '../helpers/committed-migration';
import { TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

const MiB = 1024 * 1024;

/** SHA-256 of the bytes a guest sees on a qcow2 disk (its raw contents). */
function guestBytesSha256(disk: string): string {
  const raw = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vf-raw-')), 'disk.raw');
  try {
    execFileSync('qemu-img', ['convert', '-U', '-O', 'raw', disk, raw]);
    return createHash('sha256').update(fs.readFileSync(raw)).digest('hex');
  } finally {
    fs.rmSync(path.dirname(raw), { recursive: true, force: true });
  }
}

/**
 * A VM with a data disk: the guest writes its data disk on each boot (dataDiskWriter) and keeps
 * reading it back past its page cache. What it wrote must be what it reads after a live
 * migration, what a backup holds, and what a restored VM's disk holds, byte for byte.
 */
describe('data disks', () => {
  let stack: TestStack;
  let vms: ReturnType<typeof vmOperations>;
  let backups: ReturnType<typeof backupOperations>;
  let datastore: string;

  beforeAll(async () => {
    stack = await TestStack.create('data-disks');
    await stack.startControllerProcess();
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    vms = vmOperations(stack.client, stack.config);
    backups = backupOperations(stack.client, stack.config);
    datastore = dataPaths(stack.config.dataDir).datastore;
  });
  afterAll(() => stack.stop());

  const agentOf = (hostId: string, vmId: string) => qemuOn(stack.config, hostId).files(vmId).agentSocket;

  /** What the guest wrote to its data disk at its last boot. */
  const written = (hostId: string, vmId: string) =>
    until(`${vmId} to write its data disk`, () => readGuestFile(agentOf(hostId, vmId), '/run/vdb.written'));

  /** What the guest reads on its data disk in a pass begun after this call: its view now. */
  async function readsNow(hostId: string, vmId: string): Promise<string> {
    const read = async () => (await readGuestFile(agentOf(hostId, vmId), '/run/vdb.read')).trim().split(' ');
    const [before] = await until(`${vmId} to read its data disk`, read);
    const [, sha] = await until(`${vmId} to read its data disk again`, async () => {
      const r = await read();
      return Number(r[0]) > Number(before) + 1 && r;
    });
    return sha;
  }

  test('a data disk survives live migration, and backup/restore (full and incremental) byte-identical', async () => {
    const created = await (
      await vms.create({
        vmId: 'files',
        image: GUEST_IMAGE,
        host: 'host-a',
        // A root disk larger than its image: backups size their targets from the disk, not the image.
        diskSizeBytes: 96 * MiB,
        dataDisks: [16 * MiB],
        userData: dataDiskWriter,
      })
    ).result();
    const files = vmFiles(datastore, 'files');
    expect(created.diskPath).toBe(files.disk);
    expect((await stack.inventory.vms.findOne({ _id: 'files' }))!.diskBytes).toEqual([96 * MiB, 16 * MiB]);
    const first = (await written('host-a', 'files')).trim();
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await readsNow('host-a', 'files')).toBe(first);

    // The destination's QEMU opens the same data disk: the guest reads there what it wrote here.
    await committedMigration(stack.inventory, 'files', () => vms.migrate({ vmId: 'files', to: 'host-b' }));
    expect(hostsRunning(stack.config, 'files', ['host-a', 'host-b'])).toEqual(['host-b']);
    expect(await readsNow('host-b', 'files')).toBe(first);

    const full = await (await backups.run({ vmId: 'files' })).result();
    expect(full.kind).toBe('full');

    // A second boot writes a second chunk: the next backup copies only that, from both disks' bitmaps.
    await (await vms.stop({ vmId: 'files' })).result();
    await (await vms.start({ vmId: 'files' })).result();
    const second = (await written('host-b', 'files')).trim();
    expect(second).not.toBe(first);
    const inc = await (await backups.run({ vmId: 'files' })).result();
    expect(inc).toMatchObject({ kind: 'incremental', chainId: full.chainId });
    const incDoc = await stack.inventory.backups.findOne({ _id: inc.backupId });
    expect(incDoc!.dataDisks).toEqual([
      expect.objectContaining({ index: 1, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }),
    ]);
    // The incremental's data file holds about the one chunk written since, not the whole disk.
    expect(incDoc!.dataDisks![0].sizeBytes).toBeLessThan(4 * MiB);

    await (await vms.stop({ vmId: 'files' })).result();
    expect(guestBytesSha256(files.diskOf(1))).toBe(second);

    // Each restore's data disk holds exactly what the guest had written at that backup.
    for (const [backup, vmId, sha] of [
      [inc, 'files-inc', second],
      [full, 'files-full', first],
    ] as const) {
      const restored = await (
        await backups.restore({ backupId: backup.backupId, vmId, userData: '' })
      ).result();
      expect(guestBytesSha256(vmFiles(datastore, vmId).diskOf(1))).toBe(sha);
      // The restore claims the backed-up VM's disks at their sizes in its project's quota.
      expect(await stack.inventory.vms.findOne({ _id: vmId })).toMatchObject({
        state: 'running',
        guest: { dataDisks: [16 * MiB] },
        diskBytes: [96 * MiB, 16 * MiB],
      });
      expect(restored.verifiedBy).toBe('guest-agent');
    }
    const verified = await (await backups.verify(inc.backupId)).result();
    expect(verified.verified).toEqual([inc.backupId, full.backupId]);

    // A data disk grows online, as the root disk does; the guest sees the new size at once.
    const host = (await stack.inventory.vms.findOne({ _id: 'files-inc' }))!.host!;
    await (await vms.resizeDisk({ vmId: 'files-inc', sizeBytes: 32 * MiB, disk: 1 })).result();
    const sectors = await until('the guest to see its grown data disk', async () => {
      const s = Number((await readGuestFile(agentOf(host, 'files-inc'), '/sys/block/vdb/size')).trim());
      return s === (32 * MiB) / 512 && s;
    });
    expect(sectors).toBe(65536);
    expect((await stack.inventory.vms.findOne({ _id: 'files-inc' }))!.diskBytes).toEqual([
      96 * MiB,
      32 * MiB,
    ]);

    // Deleting a VM deletes its data disks with it.
    await (await vms.delete({ vmId: 'files-inc' })).result();
    expect(fs.existsSync(vmFiles(datastore, 'files-inc').diskOf(1))).toBe(false);
  });

  test('bad data disk requests are refused by field before anything is created', async () => {
    await expect(
      vms.create({ vmId: 'too-many', image: GUEST_IMAGE, dataDisks: Array(9).fill(16 * MiB) }),
    ).rejects.toThrow(/dataDisks: at most 8 data disks/);
    await expect(vms.create({ vmId: 'tiny', image: GUEST_IMAGE, dataDisks: [4096] })).rejects.toThrow(
      /dataDisks\.0: must be at least 1 MiB/,
    );
    await expect(vms.resizeDisk({ vmId: 'files', sizeBytes: 32 * MiB, disk: 9 })).rejects.toThrow(
      /disk: must be at most 8/,
    );
    expect(await stack.inventory.vms.findOne({ _id: 'too-many' })).toBeNull();
    expect(await stack.inventory.vms.findOne({ _id: 'tiny' })).toBeNull();
  });
});
