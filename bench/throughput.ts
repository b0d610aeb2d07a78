/**
 * VM operations per minute on the simulated fleet, on the embedded stack (Temporal dev server,
 * FerretDB on SQLite) and on the cluster stack (the Temporal server and FerretDB, both on
 * PostgreSQL), one after the other in one run. `--concurrency` lanes each run create → stop →
 * start → delete on a VM of their own until `--ops` operations are done. The hosts are simulated
 * (no QEMU), so the figures are virtflow's own overhead: Temporal, the inventory, the workers.
 * Prints operations per minute and p50/p99 latency side by side, with where the time went: the
 * inventory (every database command's time, summed per operation) and the rest (Temporal's
 * round trips and the workers). The embedded stack is the baseline the ratios are against.
 *
 *   npx tsx bench/throughput.ts [--ops 200] [--concurrency 10] [--hosts 20]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectClient } from '../client/temporal';
import { vmOperations } from '../client/vm-operations';
import type { Config } from '../domain/config';
import { dbProfileTotalMs, resetDbProfile } from '../inventory/db-profile';
import { openInventory, type Inventory } from '../inventory/db';
import { insertSimImage, populateSimFleet } from '../inventory/sim-fleet';
import { ClusterStack, clusterStackInstalled } from '../scripts/services/cluster-stack';
import { startSimulation } from '../worker/simulation';
import { arg } from './args';
import { startBenchStack } from './bench-stack';

// The database time is measured by the profiler in this process (controller and sim agent run here).
process.env.VIRTFLOW_DB_PROFILE = '1';

const opsWanted = arg('ops', 200);
const concurrency = arg('concurrency', 10);
const hostCount = arg('hosts', 20);
const kinds = ['create', 'stop', 'start', 'delete'] as const;

interface Outcome {
  stack: string;
  opsPerMin: number;
  p50: number;
  p99: number;
  mean: number;
  dbMsPerOp: number;
  failed: number;
}

const quantile = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * q))];

/** Runs the lanes against one stack and measures them. */
async function measure(stack: string, config: Config, client: Client, inv: Inventory): Promise<Outcome> {
  const sim = await startSimulation(config);
  try {
    await populateSimFleet(inv, { hosts: hostCount, vms: 0, seed: 1 });
    await insertSimImage(inv, 'bench/throughput');
    const vms = vmOperations(client, config);
    const latencies: number[] = [];
    let started = 0;
    let failed = 0;
    resetDbProfile();
    const began = Date.now();
    const lane = async (n: number) => {
      for (let round = 0; started < opsWanted; round++) {
        const vmId = `tp-${n}-${round}`;
        for (const kind of kinds) {
          if (started++ >= opsWanted) return;
          const t = Date.now();
          try {
            const op =
              kind === 'create'
                ? await vms.create({ vmId, image: 'sim-image', memoryMiB: 512 })
                : kind === 'delete'
                  ? await vms.delete({ vmId, gracefulTimeoutSec: 0 })
                  : await vms[kind]({ vmId, ...(kind === 'stop' ? { gracefulTimeoutSec: 0 } : {}) });
            await op.result();
            latencies.push(Date.now() - t);
          } catch (err) {
            failed++;
            console.log(`  ${stack}: ${kind} ${vmId} failed: ${(err as Error).message}`);
            break;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, i) => lane(i)));
    const wallMin = (Date.now() - began) / 60_000;
    latencies.sort((a, b) => a - b);
    return {
      stack,
      opsPerMin: latencies.length / wallMin,
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
      dbMsPerOp: dbProfileTotalMs() / Math.max(1, latencies.length),
      failed,
    };
  } finally {
    await sim.stop();
  }
}

async function embedded(): Promise<Outcome> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtflow-bench-tp-'));
  const stack = await startBenchStack(dir, 0, { controller: false });
  try {
    return await measure(
      'embedded (dev server, FerretDB/SQLite)',
      stack.config,
      stack.client,
      stack.inventory,
    );
  } finally {
    await stack.stop();
  }
}

async function cluster(): Promise<Outcome> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtflow-bench-tp-'));
  fs.chmodSync(dir, 0o755);
  const stack = await ClusterStack.start(dir, { workers: false });
  const client = await connectClient(stack.config);
  const inv = await openInventory(stack.config);
  try {
    return await measure('cluster (Temporal server, FerretDB/PostgreSQL)', stack.config, client, inv);
  } finally {
    await client.connection.close();
    await inv.close();
    await stack.stop();
  }
}

async function main() {
  if (!clusterStackInstalled())
    throw new Error('the cluster stack is not installed: run scripts/bootstrap --cluster');
  console.log(
    `throughput: ${opsWanted} VM operations (create, stop, start, delete) in ${concurrency} lanes on ${hostCount} simulated hosts`,
  );
  const base = await embedded();
  const other = await cluster();
  const row = (o: Outcome) =>
    `  ${o.stack.padEnd(48)} ${o.opsPerMin.toFixed(1).padStart(7)} ops/min   p50 ${String(o.p50).padStart(6)} ms   ` +
    `p99 ${String(o.p99).padStart(6)} ms   of a mean ${o.mean.toFixed(0)} ms: inventory ${o.dbMsPerOp.toFixed(0)} ms, ` +
    `Temporal and workers ${Math.max(0, o.mean - o.dbMsPerOp).toFixed(0)} ms${o.failed ? `   ${o.failed} failed` : ''}`;
  console.log(row(base));
  console.log(row(other));
  console.log(
    `  cluster / embedded: throughput ×${(other.opsPerMin / base.opsPerMin).toFixed(2)}, p50 ×${(other.p50 / base.p50).toFixed(2)}, p99 ×${(other.p99 / base.p99).toFixed(2)}`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
