import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { sha256File } from '../../hypervisor/qemu-img';
import { importImage } from '../../inventory/images';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { hostsRunning } from '../helpers/guests';

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

  test('stores an image under its SHA-256 with the format qemu-img reads, and a re-import is a no-op', async () => {
    const doc = await importImage(stack.inventory, repo, { name: 'guest-raw', file: rawFile });
    expect(doc).toMatchObject({
      _id: 'guest-raw',
      format: 'raw',
      sha256: await sha256File(rawFile),
      virtualSizeBytes: 64 * 1024 * 1024,
      path: path.join(repo, `${doc.sha256}.raw`),
    });
    expect(await sha256File(doc.path)).toBe(doc.sha256);
    const again = await importImage(stack.inventory, repo, { name: 'guest-raw', file: rawFile });
    expect(again).toEqual(doc);
    expect(await stack.inventory.images.countDocuments({})).toBe(1);

    const qcow = await importImage(stack.inventory, repo, { name: 'guest-qcow2', file: installed.guestDisk });
    expect(qcow.format).toBe('qcow2');
    await expect(
      importImage(stack.inventory, repo, { name: 'guest-raw', file: installed.guestDisk }),
    ).rejects.toThrow(/^name: image "guest-raw" already exists with other content/);
    await expect(
      importImage(stack.inventory, repo, { name: 'nothing', file: '/no/such/file' }),
    ).rejects.toThrow(/^file: "\/no\/such\/file" is not a readable file/);
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
