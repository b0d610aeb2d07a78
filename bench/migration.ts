/**
 * Live migration through the workflow against the same migration done by a bare QMP script,
 * in one run, at the same bandwidth: median wall time and downtime of each and their ratio.
 * The workflow adds pre-checks, a reservation, progress reporting, verification of a fresh
 * guest heartbeat on the destination and the inventory commit; this shows what that costs.
 *
 * The network's view, side by side: the migrating guest has a NIC on a network of the local
 * lab (its hosts' namespaces), and a peer guest pings it every 10 ms throughout; each migration
 * counts the packets the peer lost (goal: virtflow loses none more than raw QMP).
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
import { createNetwork } from '../inventory/networks';
import { parseInput } from '../domain/errors';
import { networkSpecSchema, nicConfig } from '../domain/network';
import { readGuestFile } from '../hypervisor/guest-agent';
import { HostNetwork } from '../hypervisor/host-network';
import { LAB_UPLINK, LabNetwork } from '../scripts/services/lab-network';
import { parsePingRounds, steadyPinger } from '../scripts/guest/workloads';
import { arg } from './args';

const runs = arg('runs', 5);
const bandwidth = arg('bandwidth', 32);
const debian = arg('debian', 0) === 1;
const memoryMiB = arg('memory', debian ? 768 : 256);
const subject = debian
  ? { name: 'debian', file: installed.debianImage, firmware: 'uefi' as const }
  : { name: 'local', file: installed.guestDisk, firmware: 'bios' as const };
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The network both runs use: untagged on the lab hosts' uplink. */
const NETWORK = { name: 'bench', cidr: '10.30.0.0/24', uplink: LAB_UPLINK };
const GUEST_IP = '10.30.0.10';
const PEER_IP = '10.30.0.20';
const LAB_HOSTS = ['host-a', 'host-b'];

/**
 * Packets the peer's 10 ms pinger (steadyPinger, rounds of 2 s) lost while `migrate` ran:
 * every round from the first that started after the last complete one before it, to the one
 * after the round in flight when it ended.
 */
async function lostDuring(peerAgent: string, migrate: () => Promise<void>): Promise<number> {
  const rounds = async () => parsePingRounds(await readGuestFile(peerAgent, '/run/ping.rounds'));
  const waitFor = async (round: number) => {
    for (;;) {
      const all = await rounds();
      if ((all.at(-1)?.round ?? 0) >= round) return all;
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const before = (await rounds()).at(-1)?.round ?? 0;
  await migrate();
  const after = (await rounds()).at(-1)?.round ?? 0;
  const all = await waitFor(after + 2);
  return all
    .filter((r) => r.round > before && r.round <= after + 1)
    .reduce((n, r) => n + r.sent - r.received, 0);
}

/** Until the peer's last round got every reply: the network is steady before a migration. */
async function steady(peerAgent: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const last = parsePingRounds(await readGuestFile(peerAgent, '/run/ping.rounds').catch(() => '')).at(-1);
    if (last && last.sent > 0 && last.sent === last.received) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the peer never pinged ${GUEST_IP} steadily`);
}

/** The baseline: QEMU's own migration, driven with nothing but QMP. */
async function rawQmpRuns(
  dir: string,
  lab: LabNetwork,
): Promise<{ wall: number[]; downtime: number[]; lost: number[] }> {
  const hosts = LAB_HOSTS.map((h) => new QemuHost(path.join(dir, `raw-${h}`)));
  // The same bridges and taps a host agent makes, so both runs share the network plumbing.
  const networks = LAB_HOSTS.map(
    (h, i) =>
      new HostNetwork({
        netns: lab.netnsOf(h),
        uplinks: [LAB_UPLINK],
        tapHelper: installed.tapHelper,
        vlanPort: installed.vlanPort,
        runDir: hosts[i].runDir,
      }),
  );
  const network = parseInput(networkSpecSchema, NETWORK, '');
  const guestNic = nicConfig(network, '0a:76:66:be:00:01', GUEST_IP, 0);
  const peerNic = nicConfig(network, '0a:76:66:be:00:02', PEER_IP, 0);
  const varsPath = subject.firmware === 'uefi' ? path.join(dir, 'raw.vars.fd') : undefined;
  if (varsPath) ensureVarsStore(varsPath);
  const guestOf = async (vmId: string, nic: typeof guestNic, userData?: string) => {
    const disk = path.join(dir, `${vmId}.qcow2`);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', subject.file, '-F', 'qcow2', disk]);
    const seedPath = path.join(dir, `${vmId}.seed.iso`);
    await writeSeed(seedPath, { instanceId: vmId, hostname: vmId, sshKeys: [], userData, nics: [nic] });
    return { vmId, memoryMiB, vcpus: 1, firmware: subject.firmware, disks: [disk], seedPath };
  };
  const spec = { ...(await guestOf('bench-raw', guestNic)), varsPath };
  const peer = await guestOf('bench-peer', peerNic, steadyPinger(GUEST_IP));
  await hosts[0].start({ ...spec, nics: await networks[0].attach([guestNic]) });
  await hosts[0].start({
    ...peer,
    firmware: 'bios',
    memoryMiB: 128,
    nics: await networks[0].attach([peerNic]),
  });
  // Not timed: the guests boot once, then one migrates back and forth while the other pings it.
  await waitForGuestAlive(hosts[0], 'bench-raw', { guestAgent: true, timeoutMs: 300_000 });
  const peerAgent = hosts[0].files('bench-peer').agentSocket;
  await steady(peerAgent);
  const wall: number[] = [];
  const downtime: number[] = [];
  const lost: number[] = [];
  for (let i = 0; i < runs; i++) {
    const [src, dst] = i % 2 === 0 ? hosts : [hosts[1], hosts[0]];
    const dstNetwork = networks[i % 2 === 0 ? 1 : 0];
    let t0 = 0;
    let stats: { status: string; downtimeMs: number | null } = { status: 'none', downtimeMs: 0 };
    lost.push(
      await lostDuring(peerAgent, async () => {
        t0 = Date.now();
        await dst.start({ ...spec, nics: await dstNetwork.attach([guestNic]), incoming: true });
        const port = 49900 + (i % 50);
        await (await dst.monitor('bench-raw')).execute('migrate-incoming', { uri: `tcp:127.0.0.1:${port}` });
        const qmp = await src.monitor('bench-raw');
        await setMigrationParameters(qmp, { maxBandwidthMiBps: bandwidth, downtimeLimitMs: 300 });
        await qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
        stats = await readMigration(qmp);
        while (stats.status !== 'completed') {
          if (!['setup', 'active', 'device'].includes(stats.status))
            throw new Error(`raw migration ${stats.status}`);
          await new Promise((r) => setTimeout(r, 100));
          stats = await readMigration(qmp);
        }
        await src.stop('bench-raw', 0);
        wall.push(Date.now() - t0);
      }),
    );
    downtime.push(stats.downtimeMs ?? 0);
  }
  for (const h of hosts) for (const vmId of ['bench-raw', 'bench-peer']) h.kill(vmId);
  return { wall, downtime, lost };
}

/** The same migrations through virtflow: workflow, host agents, inventory. */
async function workflowRuns(
  dir: string,
  lab: LabNetwork,
): Promise<{ wall: number[]; downtime: number[]; server: number[]; lost: number[] }> {
  const stack = await startBenchStack(dir, 2, { lab });
  try {
    await importImage(stack.inventory, path.join(stack.config.dataDir, 'images'), {
      name: 'guest',
      file: subject.file,
      firmware: subject.firmware,
    });
    await importImage(stack.inventory, path.join(stack.config.dataDir, 'images'), {
      name: 'peer',
      file: installed.guestDisk,
    });
    await createNetwork(stack.inventory, NETWORK);
    const ops = vmOperations(stack.client, stack.config);
    const [vm, peer] = await Promise.all([
      ops.create({
        vmId: 'bench-wf',
        image: 'guest',
        memoryMiB,
        host: 'host-a',
        bootTimeoutSec: 300,
        nics: [{ network: NETWORK.name, ip: GUEST_IP }],
      }),
      ops.create({
        vmId: 'bench-peer',
        image: 'peer',
        host: 'host-a',
        nics: [{ network: NETWORK.name, ip: PEER_IP }],
        userData: steadyPinger(GUEST_IP),
      }),
    ]);
    await Promise.all([vm.result(), peer.result()]);
    const peerAgent = new QemuHost(path.join(stack.config.dataDir, 'hosts', 'host-a')).files(
      'bench-peer',
    ).agentSocket;
    await steady(peerAgent);
    const wall: number[] = [];
    const server: number[] = [];
    const downtime: number[] = [];
    const lost: number[] = [];
    for (let i = 0; i < runs; i++) {
      lost.push(
        await lostDuring(peerAgent, async () => {
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
        }),
      );
    }
    for (const vmId of ['bench-wf', 'bench-peer'])
      await (await ops.delete({ vmId, gracefulTimeoutSec: 0 })).result();
    return { wall, downtime, server, lost };
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
    const lab = await LabNetwork.create(dir, LAB_HOSTS);
    let raw, wf;
    try {
      raw = await rawQmpRuns(dir, lab);
      wf = await workflowRuns(dir, lab);
    } finally {
      await lab.destroy();
    }
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
    console.log(
      `  network: packets a 10 ms pinger lost per migration: raw QMP ${fmt(raw.lost)} (median ${median(raw.lost)}), ` +
        `workflow ${fmt(wf.lost)} (median ${median(wf.lost)}); added by virtflow ${median(wf.lost) - median(raw.lost)}`,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
