import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { repoRoot } from '../../domain/config';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { cli, freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';
import { vmOperations } from '../../client/vm-operations';
import { isProcessRunning } from '../../hypervisor/qemu-host';
import { imageInfo } from '../../hypervisor/qemu-img';
import { readGuestFile } from '../../hypervisor/guest-agent';

/** Width, height and whether any pixel is lit, of an 8-bit RGB PNG (what QEMU's screendump writes). */
function readPng(file: string): { width: number; height: number; lit: boolean } {
  const png = fs.readFileSync(file);
  expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  expect({ bitDepth: png[24], colourType: png[25] }).toEqual({ bitDepth: 8, colourType: 2 });
  const idat: Buffer[] = [];
  for (let at = 8; at < png.length;) {
    const length = png.readUInt32BE(at);
    if (png.toString('latin1', at + 4, at + 8) === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + length));
    at += 12 + length;
  }
  const rows = zlib.inflateSync(Buffer.concat(idat));
  const stride = 1 + width * 3;
  expect(rows.length).toBe(stride * height);
  // Each row starts with its filter byte; every filter keeps an all-black row all zeros.
  let lit = false;
  for (let i = 0; i < rows.length && !lit; i++) lit = i % stride !== 0 && rows[i] !== 0;
  return { width, height, lit };
}

const sshKey =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0vCFgkSvw2UGnC6N9bUbbWlnTLlbhVsCl8qvq3j4kN operator@virtflow';

describe('VM lifecycle on real QEMU hosts', () => {
  let stack: TestStack;
  let ops: ReturnType<typeof vmOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('vm-lifecycle');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(undefined, ['--memory', '4096', '--facts-interval', '2']);
    await importGuestImage(stack.inventory, stack.config);
    ops = vmOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  test('a VM created without a host lands on the least-loaded eligible host and really runs there', async () => {
    // host-a gets a VM first, so host-b and host-c are the least loaded; the tie goes to host-b.
    const first = await (await ops.create({ vmId: 'web-1', image: GUEST_IMAGE, host: 'host-a' })).result();
    expect(first.host).toBe('host-a');

    const op = await ops.create({
      sshKeys: [sshKey],
      vmId: 'web-2',
      image: GUEST_IMAGE,
      memoryMiB: 128,
      diskSizeBytes: 128 * 1024 ** 2,
    });
    const created = await op.result();
    expect(created.host).toBe('host-b');
    // The root disk is the size asked for, larger than the 64 MiB image it rests on.
    expect((await imageInfo(created.diskPath)).virtualSizeBytes).toBe(128 * 1024 ** 2);
    expect(hostsRunning(stack.config, 'web-2')).toEqual(['host-b']);
    const hb = await freshHeartbeat(stack.config, 'host-b', 'web-2');
    expect(hb.vmId).toBe('web-2');

    const listed = await cli(stack.env, ['vm', 'list', '--json']);
    expect(listed.code).toBe(0);
    const vms = JSON.parse(listed.stdout) as { _id: string; state: string; host: string }[];
    expect(vms.map((v) => [v._id, v.state, v.host])).toEqual([
      ['web-1', 'running', 'host-a'],
      ['web-2', 'running', 'host-b'],
    ]);
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    const events = await stack.inventory.events
      .find({ subject: 'vm/web-2', operation: 'create-vm' })
      .toArray();
    expect(events.map((e) => e.outcome)).toEqual(['completed']);
  });

  test('vm show reports the hostname, OS and addresses the guest agent gives, and the firmware', async () => {
    const shown = await cli(stack.env, ['vm', 'show', 'web-2', '--json']);
    expect(shown.code).toBe(0);
    const doc = JSON.parse(shown.stdout) as {
      guest: { firmware: string };
      guestInfo: Record<string, unknown>;
    };
    expect(doc.guest.firmware).toBe('bios');
    expect(doc.guestInfo).toMatchObject({
      hostname: 'web-2',
      os: 'virtflow test guest (busybox)',
      addresses: [{ interface: 'lo', address: '127.0.0.1', prefix: 8 }],
    });
    const text = await cli(stack.env, ['vm', 'show', 'web-2']);
    expect(text.stdout).toMatch(/guest-hostname\s+web-2/);
    expect(text.stdout).toMatch(/guest-addresses\s+lo 127\.0\.0\.1\/8/);
  });

  test("the seed reached the guest: its SSH key is in root's authorized_keys, read through the agent", async () => {
    const socket = qemuOn(stack.config, 'host-b').files('web-2').agentSocket;
    expect(await readGuestFile(socket, '/root/.ssh/authorized_keys')).toBe(`${sshKey}\n`);
  });

  test("a running VM's disk grows online and the guest sees it; a smaller size is refused naming both", async () => {
    const grown = await (await ops.resizeDisk({ vmId: 'web-2', sizeBytes: 192 * 1024 ** 2 })).result();
    expect(grown).toMatchObject({
      host: 'host-b',
      previousBytes: 128 * 1024 ** 2,
      sizeBytes: 192 * 1024 ** 2,
      online: true,
    });
    const socket = qemuOn(stack.config, 'host-b').files('web-2').agentSocket;
    // The guest's own view: /sys/block/vda/size counts 512-byte sectors.
    expect(await readGuestFile(socket, '/sys/block/vda/size')).toBe(`${(192 * 1024 ** 2) / 512}\n`);
    const refused = await (
      await ops.resizeDisk({ vmId: 'web-2', sizeBytes: 64 * 1024 ** 2 })
    )
      .result()
      .catch((e: unknown) => e as { cause?: { message?: string } });
    expect((refused as { cause: { message: string } }).cause.message).toBe(
      'sizeBytes: 64 MiB is smaller than the disk of web-2, which is 192 MiB: disks only grow',
    );
    expect(hostsRunning(stack.config, 'web-2')).toEqual(['host-b']);
  });

  test('vm console --log shows the boot; vm console attaches to the live console and Ctrl-] detaches', async () => {
    const log = await cli(stack.env, ['vm', 'console', 'web-2', '--log', '--bytes', '100000']);
    expect(log.code).toBe(0);
    expect(log.stdout).toContain('virtflow-guest-ready vm=web-2');

    const attached = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin', 'virtflow.js'), 'vm', 'console', 'web-2'],
      {
        env: stack.env,
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    attached.stdout.on('data', (d: Buffer) => (out += d.toString()));
    attached.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => attached.once('exit', resolve));
    // Live lines arrive while attached: heartbeats the guest prints from now on.
    for (let i = 0; i < 100 && !/virtflow-heartbeat vm=web-2/.test(out); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect({ out: out.slice(-200), err }).toMatchObject({
      out: expect.stringMatching(/virtflow-heartbeat vm=web-2 seq=\d+/),
    });
    attached.stdin.write(Buffer.from([0x1d]));
    expect(await exited).toBe(0);
    expect(hostsRunning(stack.config, 'web-2')).toEqual(['host-b']);
  });

  test("vm screenshot saves the VM's screen as a PNG, showing what the firmware and boot loader printed", async () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vf-shot-')), 'web-2.png');
    const r = await cli(stack.env, ['vm', 'screenshot', 'web-2', file, '--json']);
    expect(r.code).toBe(0);
    const shot = JSON.parse(r.stdout) as { host: string; width: number; height: number };
    expect(shot.host).toBe('host-b');
    const png = readPng(file);
    expect(png).toEqual({ width: shot.width, height: shot.height, lit: true });
    expect(png.width).toBeGreaterThanOrEqual(640);
    const stopped = await cli(stack.env, ['vm', 'screenshot', 'web-1-never', file]);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toMatch(/web-1-never/);
  });

  test('stop, start and delete: the process and the disk are really gone after delete, and the inventory agrees', async () => {
    const vm = await stack.inventory.vms.findOne({ _id: 'web-1' });
    const pid = qemuOn(stack.config, 'host-a').find('web-1')!.pid;

    // A bound the guest never needs (it powers off in about a second), so a loaded CI machine
    // cannot turn the graceful stop into a forced one: 2 s did, once, on 2 cores.
    const stopped = await (await ops.stop({ vmId: 'web-1', gracefulTimeoutSec: 60 })).result();
    // Its guest agent was asked first, and the guest powered itself off.
    expect(stopped.how).toBe('guest-agent');
    expect(isProcessRunning(pid)).toBe(false);
    expect(hostsRunning(stack.config, 'web-1')).toEqual([]);
    expect(await stack.inventory.vms.findOne({ _id: 'web-1' })).toMatchObject({
      state: 'stopped',
      host: 'host-a',
    });
    expect(fs.existsSync(vm!.diskPath)).toBe(true);

    await (await ops.start({ vmId: 'web-1' })).result();
    expect(hostsRunning(stack.config, 'web-1')).toEqual(['host-a']);
    await freshHeartbeat(stack.config, 'host-a', 'web-1');
    expect(await stack.inventory.vms.findOne({ _id: 'web-1' })).toMatchObject({
      state: 'running',
      host: 'host-a',
    });

    const newPid = qemuOn(stack.config, 'host-a').find('web-1')!.pid;
    await (await ops.delete({ vmId: 'web-1', gracefulTimeoutSec: 0 })).result();
    expect(isProcessRunning(newPid)).toBe(false);
    expect(hostsRunning(stack.config, 'web-1')).toEqual([]);
    expect(fs.existsSync(vm!.diskPath)).toBe(false);
    expect(await stack.inventory.vms.findOne({ _id: 'web-1' })).toBeNull();
    const outcomes = await stack.inventory.events.find({ subject: 'vm/web-1' }).sort({ at: 1 }).toArray();
    expect(outcomes.map((e) => `${e.operation}:${e.outcome}`)).toEqual([
      'create-vm:completed',
      'stop-vm:completed',
      'start-vm:completed',
      'delete-vm:info',
      'delete-vm:completed',
    ]);
  });

  test("asking for more memory than any host has is rejected with each host's reason, and nothing is left behind", async () => {
    const op = await ops.create({ vmId: 'huge-1', image: GUEST_IMAGE, memoryMiB: 8192 });
    const err = (await op.result().catch((e: unknown) => e)) as Error & { cause?: Error & { type?: string } };
    expect(err.cause?.type).toBe('InsufficientCapacityError');
    for (const host of ['host-a', 'host-b', 'host-c']) {
      expect(err.cause?.message).toMatch(new RegExp(`${host}: needs 8192 MiB memory, \\d+ MiB free`));
    }
    expect(await stack.inventory.vms.findOne({ _id: 'huge-1' })).toBeNull();
    expect(await stack.inventory.reservations.countDocuments({ vmId: 'huge-1', state: 'active' })).toBe(0);
    expect(hostsRunning(stack.config, 'huge-1')).toEqual([]);
  });

  test('a second operation on a busy VM is rejected at once with the busy error', async () => {
    const op = await ops.create({ vmId: 'busy-1', image: GUEST_IMAGE });
    await expect(ops.stop({ vmId: 'busy-1' })).rejects.toThrow(
      /^VM busy: createVm .* is running on vm busy-1$/,
    );
    await expect(ops.create({ vmId: 'busy-1', image: GUEST_IMAGE })).rejects.toThrow(/VM busy: createVm/);
    const result = await op.result();
    expect(hostsRunning(stack.config, 'busy-1')).toEqual([result.host]);
  });
});
