/**
 * Recovery times on the local stack, with agents heartbeating every second and the reconcile
 * schedule every 5 s:
 *  - drift detection latency: a guest's QEMU killed behind virtflow's back, to its drift
 *    document; against the schedule interval (the bound a pass can promise);
 *  - HA restart time for 1, 3 and 6 guests: the host's agent frozen (lost), to every HA guest
 *    heartbeating on another host; against the same guests started one by one with
 *    `vm start` (what an operator does by hand), measured in the same run.
 *
 *   npx tsx bench/recovery.ts [--drift-runs 3] [--interval 5]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { auditOperations } from '../client/audit-operations';
import { vmOperations } from '../client/vm-operations';
import { dataPaths, installed, type Config } from '../domain/config';
import { QemuHost } from '../hypervisor/qemu-host';
import { localQemuHost } from '../hypervisor/local-qemu-host';
import { readGuestLog, waitForFreshHeartbeat } from '../hypervisor/serial-log';
import { importImage } from '../inventory/images';
import type { HaRestartResult } from '../workflows/ha-restart';
import { arg } from './args';
import { startBenchStack, type BenchStack } from './bench-stack';

const driftRuns = arg('drift-runs', 3);
const intervalSec = arg('interval', 5);
const HOSTS = ['host-a', 'host-b', 'host-c'];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const sec = (ms: number) => (ms / 1000).toFixed(1);

function qemu(config: Config, hostId: string): QemuHost {
  return localQemuHost(config.dataDir, hostId);
}

/** Resolves when `vmId` sends a heartbeat on `hostId` written after now. */
function heartbeatOn(config: Config, hostId: string, vmId: string): Promise<unknown> {
  const log = qemu(config, hostId).files(vmId).serialLog;
  const offset = fs.existsSync(log) ? readGuestLog(log, vmId).size : 0;
  return waitForFreshHeartbeat(log, vmId, { offset, timeoutMs: 240_000 });
}

async function driftLatency(stack: BenchStack, vms: ReturnType<typeof vmOperations>): Promise<number[]> {
  const latencies: number[] = [];
  await (await vms.create({ vmId: 'victim', image: 'debian-busybox', host: 'host-a' })).result();
  for (let i = 0; i < driftRuns; i++) {
    const pid = qemu(stack.config, 'host-a').find('victim')!.pid;
    const t0 = Date.now();
    process.kill(pid, 'SIGKILL');
    for (;;) {
      const d = await stack.inventory.drift.findOne({
        kind: 'vm-not-running',
        subject: 'vm/victim',
        state: 'fixed',
      });
      if (d && d.lastSeenAt.getTime() >= t0) {
        latencies.push(d.lastSeenAt.getTime() - t0);
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    await (await vms.start({ vmId: 'victim' })).result();
  }
  await (await vms.delete({ vmId: 'victim', gracefulTimeoutSec: 0 })).result();
  return latencies;
}

interface HaRun {
  guests: number;
  detectMs: number;
  fenceMs: number;
  totalMs: number;
  manualMs: number;
}

async function haRun(
  stack: BenchStack,
  vms: ReturnType<typeof vmOperations>,
  guests: number,
): Promise<HaRun> {
  const ids = Array.from({ length: guests }, (_, i) => `ha${guests}-${i + 1}`);
  for (const vmId of ids) {
    await (await vms.create({ vmId, image: 'debian-busybox', host: 'host-c' })).result();
    await (await vms.setHa({ vmId, priority: 1 })).result();
  }
  const t0 = Date.now();
  stack.agents.get('host-c')!.child.kill('SIGSTOP');
  let handle;
  for (;;) {
    handle = stack.client.workflow.getHandle('host/host-c');
    const d = await handle.describe().catch(() => undefined);
    if (d?.type === 'haRestart' && d.startTime.getTime() >= t0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const detectMs = (await handle.describe()).startTime.getTime() - t0;
  const r: HaRestartResult = await handle.result();
  if (r.restarted.length !== guests)
    throw new Error(`HA restarted ${r.restarted.length} of ${guests}: ${JSON.stringify(r.failed)}`);
  await Promise.all(r.restarted.map((x) => heartbeatOn(stack.config, x.to, x.vmId)));
  const totalMs = Date.now() - t0;
  const fenced = await stack.inventory.events.findOne(
    { operation: 'fence-host', subject: 'host/host-c', outcome: 'completed' },
    { sort: { at: -1 } },
  );
  const fenceMs = fenced!.at.getTime() - t0;

  // The manual baseline: the same guests, stopped, then started one by one by an operator.
  for (const vmId of ids) await (await vms.stop({ vmId, gracefulTimeoutSec: 0 })).result();
  const m0 = Date.now();
  for (const vmId of ids) {
    const { host } = await (await vms.start({ vmId })).result();
    await heartbeatOn(stack.config, host, vmId);
  }
  const manualMs = Date.now() - m0;

  for (const vmId of ids) await (await vms.delete({ vmId, gracefulTimeoutSec: 0 })).result();
  await stack.restartAgent('host-c');
  return { guests, detectMs, fenceMs, totalMs, manualMs };
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-'));
  const stack = await startBenchStack(dir, 3, { agentArgs: ['--facts-interval', '1', '--memory', '2048'] });
  try {
    await importImage(stack.inventory, dataPaths(stack.config.dataDir).images, {
      name: 'debian-busybox',
      file: installed.guestDisk,
    });
    const vms = vmOperations(stack.client, stack.config);
    await auditOperations(stack.client, stack.config).ensureSchedule(intervalSec);

    const drift = await driftLatency(stack, vms);
    console.log(
      `drift detection: a guest killed behind virtflow's back, ${driftRuns} runs, schedule every ${intervalSec} s`,
    );
    console.log(`  latency median ${sec(median(drift))} s (runs: ${drift.map(sec).join(', ')} s)`);
    console.log(`  ratio to the schedule interval: ${(median(drift) / (intervalSec * 1000)).toFixed(2)}`);

    console.log(
      `HA restart: host-c's agent frozen; agents heartbeat every 1 s (lost after 3), schedule every ${intervalSec} s`,
    );
    for (const guests of [1, 3, 6]) {
      const r = await haRun(stack, vms, guests);
      const restartMs = r.totalMs - r.fenceMs;
      console.log(
        `  ${guests} guest(s): all heartbeating elsewhere ${sec(r.totalMs)} s after the loss ` +
          `(handed to HA at ${sec(r.detectMs)} s, fenced at ${sec(r.fenceMs)} s, restarts took ${sec(restartMs)} s); ` +
          `by hand, one vm start after another: ${sec(r.manualMs)} s; ` +
          `ratio restarts/by-hand ${(restartMs / r.manualMs).toFixed(2)}, whole recovery/by-hand ${(r.totalMs / r.manualMs).toFixed(2)}`,
      );
    }
  } finally {
    await stack.stop();
    for (const h of HOSTS) for (const g of qemu(stack.config, h).list()) qemu(stack.config, h).kill(g.vmId);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
