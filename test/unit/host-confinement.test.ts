import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHostActivities } from '../../activities/host/host-activities';
import { ValidationError } from '../../domain/errors';
import { writeSeed } from '../../hypervisor/nocloud-seed';
import { QemuHost } from '../../hypervisor/qemu-host';

/**
 * Any Temporal client can schedule a host activity with any input. These call the activities
 * directly, as such a client would, with paths that leave the host's directories: each is
 * refused by name before a file is read, written, deleted or executed.
 */
describe('host activities stay inside their own directories', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-confine-'));
  const dirs = {
    run: path.join(root, 'hosts', 'host-a'),
    datastore: path.join(root, 'datastore'),
    images: path.join(root, 'images'),
    backups: path.join(root, 'backups'),
  };
  // A file outside every directory of the host, which a refused call must leave alone.
  const victim = path.join(root, 'victim.qcow2');
  const activities = createHostActivities({
    hostId: 'host-a',
    qemu: new QemuHost(dirs.run),
    patchLevel: () => 'base',
    datastoreDir: dirs.datastore,
    imagesDir: dirs.images,
    backupsDir: dirs.backups,
    migrationAddress: '127.0.0.1',
    migrationPorts: { first: 49152, last: 49160 },
    setPatchLevel: () => undefined,
    requestRestart: () => undefined,
    guestDisk: path.join(root, 'guest.qcow2'),
    accelFacts: { accel: 'tcg', reason: 'test', cpuModels: ['qemu64'] },
  });
  beforeAll(() => {
    for (const d of Object.values(dirs)) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(victim, 'precious');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const guest = {
    firmware: 'bios' as const,
    guestAgent: true,
    sshKeys: [],
    dataDisks: [],
    cpuModel: 'qemu64' as const,
  };
  test.each([
    ['deleteDisk with a vmId that climbs out', () => activities.deleteDisk({ vmId: '../victim' }), /^vmId: /],
    [
      'startGuest with a vmId that climbs out',
      () => activities.startGuest({ vmId: '../../victim', memoryMiB: 128, vcpus: 1, guest }),
      /^vmId: /,
    ],
    [
      'restoreDisk from a file outside the backup repository',
      () => activities.restoreDisk({ vmId: 'fine', backupPath: victim }),
      /^path: .*victim\.qcow2 is outside/,
    ],
    [
      'restoreDisk onto a vmId that climbs out',
      () => activities.restoreDisk({ vmId: '../victim', backupPath: path.join(dirs.backups, 'b.qcow2') }),
      /^vmId: /,
    ],
    [
      'deleteBackupFile outside the backup repository',
      () => activities.deleteBackupFile({ path: path.join(dirs.backups, '..', 'victim.qcow2') }),
      /^path: .* is outside/,
    ],
    [
      'prepareDisk from an image outside the repository',
      () =>
        activities.prepareDisk({
          vmId: 'fine',
          image: { path: victim, format: 'qcow2', sha256: '0'.repeat(64) },
        }),
      /^image\.path: .* is outside/,
    ],
    [
      'a patch step whose name climbs out of the catalogue',
      () => activities.runPatchStep({ name: '../../scripts', step: 'apply' }),
      /^name: /,
    ],
  ])('%s is refused', async (_what, call, reason) => {
    const err = await call().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(reason);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
    expect(fs.readdirSync(dirs.datastore)).toEqual([]);
  });

  test('a disk in use by a guest on another host is never deleted (QEMU holds its image lock)', async () => {
    const elsewhere = new QemuHost(path.join(root, 'hosts', 'host-b'));
    const disk = path.join(dirs.datastore, 'shared.qcow2');
    const seedPath = path.join(root, 'shared.seed.iso');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '16M']);
    await writeSeed(seedPath, { instanceId: 'shared', hostname: 'shared', sshKeys: [] });
    await elsewhere.start({
      vmId: 'shared',
      memoryMiB: 96,
      vcpus: 1,
      firmware: 'bios',
      disks: [disk],
      seedPath,
    });
    try {
      // host-a runs no guest named so: only the lock tells it the disk is in use.
      await expect(activities.deleteDisk({ vmId: 'shared' })).rejects.toThrow(
        /disk .*shared\.qcow2 of shared is in use by a running guest on another host/,
      );
      expect(fs.existsSync(disk)).toBe(true);
    } finally {
      await elsewhere.killConfirmed('shared');
    }
    await expect(activities.deleteDisk({ vmId: 'shared' })).resolves.toEqual({ deleted: true });
    expect(fs.existsSync(disk)).toBe(false);
  });
});
