/**
 * Boot to guest agent, in one run: `vm create` until the workflow reports the guest's agent
 * answered, against the same image started by a bare `qemu-system-x86_64` command line and
 * polled by a bare guest-agent loop (a socket, a sync, nothing else). The workflow adds
 * validation, placement, a reservation, the disk overlay, the seed and the inventory commit;
 * this shows what that costs on top of the boot itself.
 *
 *   npx tsx bench/boot.ts [--runs 3] [--debian 1]   (--debian needs npm run build:debian-image)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { vmOperations } from '../client/vm-operations';
import { installed } from '../domain/config';
import type { Firmware } from '../domain/guest';
import { ensureVarsStore, firmwareArgs } from '../hypervisor/firmware';
import { writeSeed } from '../hypervisor/nocloud-seed';
import { createOverlay } from '../hypervisor/qemu-img';
import { importImage } from '../inventory/images';
import { arg } from './args';
import { startBenchStack } from './bench-stack';

const runs = arg('runs', 3);
const withDebian = arg('debian', 0) === 1;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Subject {
  name: string;
  file: string;
  firmware: Firmware;
  memoryMiB: number;
}

/** Resolves once the guest agent on `socketPath` answers a sync: the bare baseline's whole logic. */
async function pollAgent(socketPath: string, deadline: number): Promise<void> {
  for (;;) {
    if (Date.now() > deadline) throw new Error(`no guest agent answer on ${socketPath}`);
    const answered = await new Promise<boolean>((resolve) => {
      const s = net.createConnection(socketPath);
      const timer = setTimeout(() => (s.destroy(), resolve(false)), 1000);
      s.once('error', () => (clearTimeout(timer), resolve(false)));
      s.once('connect', () => s.write('{"execute":"guest-sync-delimited","arguments":{"id":4711}}\n'));
      s.on('data', (d: Buffer) => {
        if (
          d.toString('latin1').includes('"return": 4711') ||
          d.toString('latin1').includes('"return":4711')
        ) {
          clearTimeout(timer);
          s.destroy();
          resolve(true);
        }
      });
    });
    if (answered) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One bare boot: overlay, seed and QEMU started by hand, then the agent polled. */
async function bareBoot(dir: string, subject: Subject, i: number): Promise<number> {
  const base = path.join(dir, `bare-${subject.name}-${i}`);
  const disk = `${base}.qcow2`;
  const seed = `${base}.seed.iso`;
  const vars = `${base}.vars.fd`;
  const agent = `${base}.qga`;
  const t0 = Date.now();
  await createOverlay(subject.file, 'qcow2', disk);
  await writeSeed(seed, { instanceId: `bare-${i}`, hostname: `bare-${i}`, sshKeys: [] });
  if (subject.firmware === 'uefi') ensureVarsStore(vars);
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...[
        '-accel',
        'tcg',
        '-machine',
        'pc',
        '-cpu',
        'qemu64',
        '-m',
        String(subject.memoryMiB),
        '-nodefaults',
      ],
      ...['-display', 'none', ...firmwareArgs(subject.firmware, vars), '-serial', 'null'],
      ...['-blockdev', `driver=qcow2,node-name=d0,file.driver=file,file.filename=${disk}`],
      ...['-device', 'virtio-blk-pci,drive=d0'],
      ...['-blockdev', `driver=raw,node-name=s0,read-only=on,file.driver=file,file.filename=${seed}`],
      ...['-device', 'virtio-blk-pci,drive=s0'],
      ...['-chardev', `socket,id=qga0,path=${agent},server=on,wait=off`, '-device', 'virtio-serial-pci'],
      ...['-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0'],
    ],
    { stdio: 'ignore' },
  );
  try {
    while (!fs.existsSync(agent)) await new Promise((r) => setTimeout(r, 20));
    await pollAgent(agent, Date.now() + 300_000);
    return Date.now() - t0;
  } finally {
    qemu.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-boot-'));
  const subjects: Subject[] = [
    { name: 'local', file: installed.guestDisk, firmware: 'bios', memoryMiB: 128 },
  ];
  if (withDebian)
    subjects.push({ name: 'debian', file: installed.debianImage, firmware: 'uefi', memoryMiB: 768 });
  const stack = await startBenchStack(dir, 1);
  try {
    const ops = vmOperations(stack.client, stack.config);
    for (const subject of subjects) {
      const image = await importImage(stack.inventory, path.join(stack.config.dataDir, 'images'), {
        name: subject.name,
        file: subject.file,
        firmware: subject.firmware,
      });
      const bare: number[] = [];
      const virtflow: number[] = [];
      // Alternate, so neither side always runs on a warmer page cache.
      for (let i = 0; i < runs; i++) {
        bare.push(await bareBoot(dir, { ...subject, file: image.path }, i));
        const vmId = `${subject.name}-${i}`;
        const t0 = Date.now();
        const created = await (
          await ops.create({ vmId, image: subject.name, memoryMiB: subject.memoryMiB })
        ).result();
        virtflow.push(Date.now() - t0);
        if (created.verifiedBy !== 'guest-agent') throw new Error(`${vmId} was not verified by its agent`);
        await (await ops.delete({ vmId, gracefulTimeoutSec: 0 })).result();
      }
      const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
      console.log(`${subject.name} image (${subject.firmware}, ${subject.memoryMiB} MiB), ${runs} runs each`);
      console.log(`  bare QEMU + agent poll  ms: ${fmt(bare)}  median ${median(bare)}`);
      console.log(`  vm create → agent       ms: ${fmt(virtflow)}  median ${median(virtflow)}`);
      console.log(`  ratio virtflow/bare: ${(median(virtflow) / median(bare)).toFixed(2)}x (goal ≤ 1.10)`);
    }
  } finally {
    await stack.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
