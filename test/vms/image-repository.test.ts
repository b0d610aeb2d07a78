import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { sha256File } from '../../hypervisor/qemu-img';
import { importImage } from '../../inventory/images';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { cli, hostsRunning } from '../helpers/guests';

describe('the image repository', () => {
  let stack: TestStack;
  let repo: string;
  let rawFile: string;

  beforeAll(async () => {
    stack = await TestStack.create('image-repository');
    repo = path.join(stack.config.dataDir, 'images');
    fs.mkdirSync(stack.config.dataDir, { recursive: true });
    rawFile = path.join(stack.config.dataDir, 'guest.raw');
    execFileSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', installed.guestDisk, rawFile]);
  });
  afterAll(() => stack.stop());

  /** Files in the repository other than import staging: what an import really stored. */
  const stored = () =>
    fs.existsSync(repo) ? fs.readdirSync(repo).filter((f) => !f.startsWith('.import-')) : [];
  const sh = (cmd: string, args: string[]) =>
    execFileSync(cmd, args, { cwd: stack.config.dataDir, stdio: 'pipe' });
  const identicalContent = (a: string, fa: string, b: string) => {
    try {
      sh('qemu-img', ['compare', '-q', '-f', fa, '-F', 'qcow2', a, b]);
      return true;
    } catch {
      return false;
    }
  };

  test('normalises raw and vmdk to qcow2 under its SHA-256, records where it came from, and a re-import is a no-op', async () => {
    const doc = await importImage(stack.inventory, repo, { name: 'guest-raw', file: rawFile });
    expect(doc).toMatchObject({
      _id: 'guest-raw',
      format: 'qcow2',
      sourceFormat: 'raw',
      sourceSha256: await sha256File(rawFile),
      sourceSizeBytes: 64 * 1024 * 1024,
      virtualSizeBytes: 64 * 1024 * 1024,
      firmware: 'bios',
      guestAgent: true,
      path: path.join(repo, `${doc.sha256}.qcow2`),
    });
    expect(await sha256File(doc.path)).toBe(doc.sha256);
    expect(identicalContent(rawFile, 'raw', doc.path)).toBe(true);
    const again = await importImage(stack.inventory, repo, { name: 'guest-raw', file: rawFile });
    expect(again).toEqual(doc);

    const vmdk = path.join(stack.config.dataDir, 'guest.vmdk');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', rawFile, vmdk]);
    const fromVmdk = await importImage(stack.inventory, repo, {
      name: 'guest-vmdk',
      file: vmdk,
      firmware: 'uefi',
    });
    expect(fromVmdk).toMatchObject({ format: 'qcow2', sourceFormat: 'vmdk', firmware: 'uefi' });
    expect(identicalContent(vmdk, 'vmdk', fromVmdk.path)).toBe(true);
    expect(await stack.inventory.images.countDocuments({})).toBe(2);

    sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'other.qcow2', '32M']);
    await expect(
      importImage(stack.inventory, repo, {
        name: 'guest-raw',
        file: path.join(stack.config.dataDir, 'other.qcow2'),
      }),
    ).rejects.toThrow(/^name: image "guest-raw" already exists with other content/);
    await expect(
      importImage(stack.inventory, repo, { name: 'nothing', file: '/no/such/file' }),
    ).rejects.toThrow(/^file: "\/no\/such\/file" does not exist/);
  });

  test('refuses every dangerous image with a one-line reason, and stores nothing', async () => {
    const dir = stack.config.dataDir;
    const before = stored();
    const images = await stack.inventory.images.countDocuments({});
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', rawFile, '-F', 'raw', 'overlay.qcow2']);
    sh('qemu-img', [
      'create',
      '-q',
      '-f',
      'qcow2',
      '-o',
      `data_file=${path.join(dir, 'external.raw')}`,
      'data-file.qcow2',
      '64M',
    ]);
    // A vmdk whose extent is a file elsewhere on the host: importing it would read that file.
    fs.writeFileSync(
      path.join(dir, 'extent.vmdk'),
      `# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="monolithicFlat"\n\nRW 131072 FLAT "${rawFile}" 0\n`,
    );
    sh('qemu-img', ['create', '-q', '-f', 'qcow2', 'huge.qcow2', '3T']);
    fs.symlinkSync(rawFile, path.join(dir, 'link.raw'));
    sh('mkfifo', [path.join(dir, 'pipe.raw')]);
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a disk image\n');
    fs.writeFileSync(path.join(dir, 'zeros.raw'), Buffer.alloc(1024 * 1024));

    const refusals: [string, RegExp, { format?: 'raw' }?][] = [
      ['overlay.qcow2', /refers to another file \(backing file .*guest\.raw\)/],
      ['data-file.qcow2', /refers to another file \(external data file .*external\.raw\)/],
      ['extent.vmdk', /refers to another file \(extent file .*guest\.raw\)/],
      ['huge.qcow2', /virtual size 3298534883328 bytes is above the repository's cap of 2199023255552 bytes/],
      ['link.raw', /is a symbolic link/],
      ['pipe.raw', /is not a regular file/],
      ['/dev/null', /is not a regular file/],
      ['notes.txt', /is not a disk image: 17 bytes is not a whole number of 512-byte sectors/],
      ['zeros.raw', /is not a disk image: no partition table/],
      ['overlay.qcow2', /is stated to be raw but its header says qcow2/, { format: 'raw' }],
    ];
    for (const [file, reason, extra] of refusals) {
      const full = path.resolve(dir, file);
      const err = (await importImage(stack.inventory, repo, { name: 'refused', file: full, ...extra }).catch(
        (e: unknown) => e,
      )) as Error;
      expect(err).toBeInstanceOf(Error);
      expect(err.message).toMatch(reason);
      expect(err.message).toMatch(/^(file|name): /);
      expect(err.message).not.toContain('\n');
    }
    expect(stored()).toEqual(before);
    expect(fs.readdirSync(repo).filter((f) => f.startsWith('.import-'))).toEqual([]);
    expect(await stack.inventory.images.countDocuments({})).toBe(images);

    // The CLI says the same in one line and exits non-zero.
    const viaCli = await cli(stack.env, [
      'image',
      'import',
      '--name',
      'refused',
      path.join(dir, 'overlay.qcow2'),
    ]);
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.stderr.trim().split('\n')).toHaveLength(1);
    expect(viaCli.stderr).toMatch(/refers to another file \(backing file/);
  });

  test('a create re-verifies the checksum: a corrupted image is refused and the create leaves nothing behind', async () => {
    await stack.startController(await bundleWorkflows());
    await stack.startAgent('host-a');
    const image = await stack.inventory.images.findOne({ _id: 'guest-raw' });
    fs.chmodSync(image!.path, 0o644);
    const fd = fs.openSync(image!.path, 'r+');
    fs.writeSync(fd, Buffer.from('bit rot'), 0, 7, 4096);
    fs.closeSync(fd);

    const op = await vmOperations(stack.client, stack.config).create({
      vmId: 'from-rotten',
      image: 'guest-raw',
    });
    const err = (await op.result().catch((e: unknown) => e)) as {
      cause?: { type?: string; message?: string };
    };
    expect(err.cause?.type).toBe('ImageChecksumError');
    expect(err.cause?.message).toMatch(/fails its checksum/);
    expect(await stack.inventory.vms.findOne({ _id: 'from-rotten' })).toBeNull();
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    expect(fs.existsSync(path.join(stack.config.dataDir, 'datastore', 'from-rotten.qcow2'))).toBe(false);
    expect(hostsRunning(stack.config, 'from-rotten')).toEqual([]);
    const event = await stack.inventory.events.findOne({ subject: 'vm/from-rotten' });
    expect(event).toMatchObject({ operation: 'create-vm', outcome: 'rolled-back' });
  });
});
