/**
 * Live migration through the workflow against the same migration done by a bare QMP script,
 * in one run, at the same bandwidth: median wall time and downtime of each and their ratio.
 * The workflow adds pre-checks, a reservation, progress reporting, verification of a fresh
 * guest heartbeat on the destination and the inventory commit; this shows what that costs.
 *
 *   npx tsx bench/migration.ts [--runs 5] [--bandwidth 32] [--memory 256] [--debian 1]
 *
 * `--debian 1` migrates the Debian 12 image (UEFI, systemd, qemu-guest-agent; built by
 * `npm run build:debian-image`) instead of the local test guest.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { vmOperations } from '../client/vm-operations';
import { startBenchStack } from './bench-stack';
import { installed } from '../domain/config';
import { QemuHost } from '../hypervisor/qemu-host';
import { readMigration, setMigrationParameters } from '../hypervisor/migration';
import { writeSeed } from '../hypervisor/nocloud-seed';
import { ensureVarsStore } from '../hypervisor/firmware';
import { waitForGuestAlive } from '../hypervisor/guest-liveness';
import { importImage } from '../inventory/images';
import { arg } from './args';

const runs = arg('runs', 5);
const bandwidth = arg('bandwidth', 32);
const debian = arg('debian', 0) === 1;
const memoryMiB = arg('memory', debian ? 768 : 256);
const subject = debian
  ? { name: 'debian', file: installed.debianImage, firmware: 'uefi' as const }
  : { name: 'local', file: installed.guestDisk, firmware: 'bios' as const };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The baseline: QEMU's own migration, driven with nothing but QMP. */
async function rawQmpRuns(dir: string): Promise<{ wall: number[]; downtime: number[] }> {
  const hosts = [new QemuHost(path.join(dir, 'raw-a')), new QemuHost(path.join(dir, 'raw-b'))];
  const disk = path.join(dir, 'raw.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', subject.file, '-F', 'qcow2', disk]);
  const seedPath = path.join(dir, 'raw.seed.iso');
  await writeSeed(seedPath, { instanceId: 'bench-raw', hostname: 'bench-raw', sshKeys: [] });
  const varsPath = subject.firmware === 'uefi' ? path.join(dir, 'raw.vars.fd') : undefined;
  if (varsPath) ensureVarsStore(varsPath);
  const spec = {
    vmId: 'bench-raw',
    memoryMiB,
    vcpus: 1,
    firmware: subject.firmware,
    disks: [disk],
    seedPath,
    varsPath,
  };
  await hosts[0].start(spec);
  // Not timed: the guest boots once, then migrates back and forth.
  await waitForGuestAlive(hosts[0], 'bench-raw', { guestAgent: true, timeoutMs: 300_000 });
  const wall: number[] = [];
  const downtime: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [src, dst] = i % 2 === 0 ? hosts : [hosts[1], hosts[0]];
    const t0 = Date.now();
    await dst.start({ ...spec, incoming: true });
    const port = 49900 + (i % 50);
    await (await dst.monitor('bench-raw')).execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
    const qmp = await src.monitor('bench-raw');
    await setMigrationParameters(qmp, { maxBandwidthMiBps: bandwidth, downtimeLimitMs: 300 });
    await qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    let stats = await readMigration(qmp);
    while (stats.status !== 'completed') {
      if (!['setup', 'active', 'device'].includes(stats.status))
        throw new Error(`raw migration ${stats.status}`);
      await new Promise((r) => setTimeout(r, 100));
      stats = await readMigration(qmp);
    }
    await src.stop('bench-raw', 0);
    wall.push(Date.now() - t0);
    downtime.push(stats.downtimeMs ?? 0);
  }
  for (const h of hosts) h.kill('bench-raw');
  return { wall, downtime };
}

/** The same migrations through virtflow: workflow, host agents, inventory. */
async function workflowRuns(dir: string): Promise<{ wall: number[]; downtime: number[]; server: number[] }> {
  const stack = await startBenchStack(dir, 2);
  try {
    await importImage(stack.inventory, path.join(stack.config.dataDir, 'images'), {
      name: 'guest',
      file: subject.file,
      firmware: subject.firmware,
    });
    const ops = vmOperations(stack.client, stack.config);
    await (
      await ops.create({ vmId: 'bench-wf', image: 'guest', memoryMiB, host: 'host-a', bootTimeoutSec: 300 })
    ).result();
    const wall: number[] = [];
    const server: number[] = [];
    const downtime: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = Date.now();
      const op = await ops.migrate({
        vmId: 'bench-wf',
        to: i % 2 === 0 ? 'host-b' : 'host-a',
        policy: { maxBandwidthMiBps: bandwidth },
      });
      const r = await op.result();
      wall.push(Date.now() - t0);
      downtime.push(r.downtimeMs ?? 0);
      if (process.env.BENCH_VERBOSE) console.log('   ', JSON.stringify(r.timelineMs));
      const d = await op.handle.describe();
      server.push(d.closeTime!.getTime() - d.startTime.getTime());
    }
    await (await ops.delete({ vmId: 'bench-wf', gracefulTimeoutSec: 0 })).result();
    return { wall, downtime, server };
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-'));
  try {
    console.log(
      `live migration of an idle ${memoryMiB} MiB ${subject.name} guest at ${bandwidth} MiB/s, ${runs} runs each`,
    );
    const raw = await rawQmpRuns(dir);
    const wf = await workflowRuns(dir);
    const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
    console.log(
      `  raw QMP   wall ms: ${fmt(raw.wall)}  median ${median(raw.wall)}  downtime median ${median(raw.downtime)} ms`,
    );
    console.log(
      `  workflow  wall ms: ${fmt(wf.wall)}  median ${median(wf.wall)}  downtime median ${median(wf.downtime)} ms`,
    );
    console.log(
      `  workflow  start→close as the server records it, ms: ${fmt(wf.server)}  median ${median(wf.server)}`,
    );
    console.log(
      `  ratio workflow/raw: wall ${(median(wf.wall) / median(raw.wall)).toFixed(2)}x, ` +
        `server-side ${(median(wf.server) / median(raw.wall)).toFixed(2)}x, ` +
        `added downtime ${median(wf.downtime) - median(raw.downtime)} ms`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
