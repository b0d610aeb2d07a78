import { WorkflowNotFoundError } from '@temporalio/client';
import { ValidationError } from '../../domain/errors';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { cli, GUEST_IMAGE, importGuestImage } from '../helpers/guests';
import { dataPaths, installed } from '../../domain/config';
import { importImage } from '../../inventory/images';
import { allocateAddress, createNetwork } from '../../inventory/networks';

describe('bad input is rejected before any state changes, naming the field', () => {
  let stack: TestStack;
  let ops: ReturnType<typeof vmOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('input-validation');
    await stack.startController(await bundleWorkflows());
    await importGuestImage(stack.inventory, stack.config);
    ops = vmOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  async function expectNothingChanged(vmId: string) {
    expect(await stack.inventory.vms.countDocuments({})).toBe(0);
    expect(await stack.inventory.reservations.countDocuments({})).toBe(0);
    await expect(stack.client.workflow.getHandle(`vm/${vmId}`).describe()).rejects.toBeInstanceOf(
      WorkflowNotFoundError,
    );
  }

  test.each([
    ['a path separator in the id', { vmId: 'a/b' }, /^vmId: must be a DNS label/],
    ['an uppercase id', { vmId: 'Web1' }, /^vmId: must be a DNS label.*\(got "Web1"\)/],
    ['a 64-character id', { vmId: 'a'.repeat(64) }, /^vmId: must be at most 63 characters/],
    ['negative memory', { memoryMiB: -5 }, /^memoryMiB: must be at least 96 MiB.*\(got -5\)/],
    ['absurd memory', { memoryMiB: 10 ** 9 }, /^memoryMiB: must be at most 1048576 MiB/],
    ['fractional vCPUs', { vcpus: 1.5 }, /^vcpus: must be a whole number/],
    ['an image name with a dot', { image: 'debian.img' }, /^image: must be a DNS label/],
    ['an SSH key that is not one', { sshKeys: ['hunter2'] }, /^sshKeys\.0: is not an OpenSSH public key/],
    ['user-data over 64 KiB', { userData: 'x'.repeat(65 * 1024) }, /^userData: user-data is at most 64 KiB/],
    ['a disk of half a MiB', { diskSizeBytes: 512 * 1024 }, /^diskSizeBytes: must be at least 1 MiB/],
    [
      'a NIC address that is not one',
      { nics: [{ network: 'lab', ip: '10.20.0.300' }] },
      /^nics\.0\.ip: must be an IPv4 address/,
    ],
    [
      'two NICs on one network',
      { nics: [{ network: 'lab' }, { network: 'lab' }] },
      /^nics\.1\.network: network lab is listed twice/,
    ],
    [
      'nine NICs',
      { nics: Array.from({ length: 9 }, (_, i) => ({ network: `n${i}` })) },
      /^nics: at most 8 NICs/,
    ],
    [
      'a label value with an escape sequence',
      { labels: { team: 'ops\u001b[2J' } },
      /^labels\.team: label values may not contain control characters/,
    ],
  ])('%s', async (_what, bad, message) => {
    const req = { vmId: 'ok-vm', image: GUEST_IMAGE, ...bad };
    const err = await ops.create(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(message);
    await expectNothingChanged(req.vmId);
  });

  test('the workflow validates again: a request that skips the client is rejected by its first step', async () => {
    const err = (await stack.client.workflow
      .execute('createVm', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: 'vm/raw-request',
        args: [{ vmId: 'raw-request', image: GUEST_IMAGE, memoryMiB: 64 }],
      })
      .catch((e: unknown) => e)) as { cause?: { type?: string; message?: string } };
    expect(err.cause?.type).toBe('ValidationError');
    expect(err.cause?.message).toMatch(/^memoryMiB: must be at least 96 MiB/);
    expect(await stack.inventory.vms.countDocuments({})).toBe(0);
  });

  test('an unknown image is rejected by name, with nothing created', async () => {
    const op = await ops.create({ vmId: 'no-image', image: 'no-such-image' });
    const err = (await op.result().catch((e: unknown) => e)) as {
      cause?: { type?: string; message?: string };
    };
    expect(err.cause?.type).toBe('ValidationError');
    expect(err.cause?.message).toMatch(/^image: no image named "no-such-image"/);
    expect(await stack.inventory.vms.countDocuments({})).toBe(0);
    expect(await stack.inventory.reservations.countDocuments({})).toBe(0);
  });

  test('a disk smaller than its image, or a UEFI image in too little memory, is refused naming both figures', async () => {
    const small = await (
      await ops.create({ vmId: 'small-disk', image: GUEST_IMAGE, diskSizeBytes: 32 * 1024 ** 2 })
    )
      .result()
      .catch((e: unknown) => e as { cause?: { type?: string; message?: string } });
    expect(small).toMatchObject({ cause: { type: 'ValidationError' } });
    expect((small as { cause: { message: string } }).cause.message).toBe(
      `diskSizeBytes: 32 MiB is smaller than image ${GUEST_IMAGE}, whose disk is 64 MiB`,
    );
    await importImage(stack.inventory, dataPaths(stack.config.dataDir).images, {
      name: 'busybox-uefi',
      file: installed.guestDisk,
      firmware: 'uefi',
    });
    const uefi = await (
      await ops.create({ vmId: 'uefi-small', image: 'busybox-uefi', memoryMiB: 128 })
    )
      .result()
      .catch((e: unknown) => e as { cause?: { message?: string } });
    expect((uefi as { cause: { message: string } }).cause.message).toBe(
      'memoryMiB: 128 MiB is too little for image busybox-uefi, which boots with UEFI firmware (at least 256 MiB)',
    );
    expect(await stack.inventory.vms.countDocuments({})).toBe(0);
    expect(await stack.inventory.reservations.countDocuments({})).toBe(0);
  });

  test('a NIC on an unknown network, a taken address or an exhausted pool is refused naming the NIC, leaving nothing', async () => {
    await createNetwork(stack.inventory, { name: 'lab', cidr: '10.20.0.0/24' });
    await createNetwork(stack.inventory, {
      name: 'one-left',
      cidr: '10.21.0.0/24',
      pool: { first: '10.21.0.10', last: '10.21.0.10' },
    });
    await allocateAddress(stack.inventory, { network: 'lab', vmId: 'other-vm', requested: '10.20.0.5' });
    await allocateAddress(stack.inventory, { network: 'one-left', vmId: 'other-vm' });
    const refused = async (vmId: string, nics: { network: string; ip?: string }[]) => {
      const op = await ops.create({ vmId, image: GUEST_IMAGE, nics });
      const err = (await op.result().catch((e: unknown) => e)) as {
        cause?: { type?: string; message?: string };
      };
      expect(err.cause?.type).toBe('ValidationError');
      return err.cause?.message;
    };
    expect(await refused('nic-a', [{ network: 'nope' }])).toMatch(
      /^nics\.0\.network: no network named "nope"/,
    );
    expect(await refused('nic-b', [{ network: 'lab', ip: '10.20.0.5' }])).toBe(
      'nics.0.ip: 10.20.0.5 on network lab is taken by vm other-vm',
    );
    // The first NIC got an address and a MAC before the second failed: both are given back.
    expect(await refused('nic-c', [{ network: 'lab' }, { network: 'one-left' }])).toMatch(
      /^nics\.1\.ip: network one-left has no free address \(pool 10\.21\.0\.10-10\.21\.0\.10, 1 in use\)/,
    );
    expect(await stack.inventory.vms.countDocuments({})).toBe(0);
    expect(await stack.inventory.reservations.countDocuments({})).toBe(0);
    expect((await stack.inventory.nicClaims.find({}).toArray()).map((c) => c.vmId)).toEqual([
      'other-vm',
      'other-vm',
    ]);
    const stray = await cli(stack.env, [
      'vm',
      'create',
      'nic-d',
      '--image',
      GUEST_IMAGE,
      '--ip',
      'lab=10.20.0.9',
    ]);
    expect(stray.stderr.trim()).toBe('virtflow: error: ip: --ip lab=… names a network with no --nic lab');
  });

  test('the CLI prints a one-line reason naming the field and exits non-zero', async () => {
    const res = await cli(stack.env, ['vm', 'create', 'Bad/Id', '--image', GUEST_IMAGE]);
    expect(res.code).toBe(1);
    expect(res.stderr.trim()).toMatch(/^virtflow: error: vmId: must be a DNS label.*\(got "Bad\/Id"\)$/);
    const mem = await cli(stack.env, ['vm', 'create', 'ok-vm', '--image', GUEST_IMAGE, '--memory', 'lots']);
    expect(mem.code).not.toBe(0);
    expect(mem.stderr).toMatch(/--memory.*"lots" is not a number/);
    const size = await cli(stack.env, [
      'vm',
      'create',
      'ok-vm',
      '--image',
      GUEST_IMAGE,
      '--disk-size',
      'huge',
    ]);
    expect(size.stderr).toMatch(/--disk-size.*"huge" is not a size/);
    const key = await cli(stack.env, [
      'vm',
      'create',
      'ok-vm',
      '--image',
      GUEST_IMAGE,
      '--ssh-key',
      '/no/such/key.pub',
    ]);
    expect(key.stderr).toMatch(/--ssh-key.*cannot read SSH key file "\/no\/such\/key\.pub": ENOENT/);
    await expectNothingChanged('ok-vm');
  });
});
