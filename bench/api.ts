/**
 * bench/api: what the HTTP API costs over the typed client library it wraps, in one run on one
 * stack. Three requests: all 10,000 VMs of the inventory (the API's pages of 1,000 followed to
 * the end, against listVms called in-process), one page of 500 (`GET /v1/vms`, against
 * pageOfVms), and starting an operation (`POST /v1/vms/<id>/stop`, against vmOperations.stop
 * in-process), each at the same concurrency. Prints requests per second and p99, and the ratios.
 *
 *   npx tsx bench/api.ts [--vms 10000] [--requests 200] [--concurrency 8]
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { vmOperations } from '../client/vm-operations';
import { createApiToken } from '../inventory/api-tokens';
import { populateSimFleet } from '../inventory/sim-fleet';
import { listVms, pageOfVms } from '../inventory/vms';
import { ApiClient } from '../client/api-client';
import { buildApiServer } from '../server/app';
import { startSimulation } from '../worker/simulation';
import { startBenchStack } from './bench-stack';

const { values } = parseArgs({
  options: {
    vms: { type: 'string', default: '10000' },
    requests: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
  },
});
const vmCount = Number(values.vms);
const requests = Number(values.requests);
/** The API's default page. */
const PAGE = 500;
const concurrency = Number(values.concurrency);

interface Measured {
  perSec: number;
  p50: number;
  p99: number;
}

/** Runs `call` `n` times in `concurrency` lanes; `call(i)` gets the request's number. */
async function measure(n: number, call: (i: number) => Promise<unknown>): Promise<Measured> {
  const latencies: number[] = [];
  let next = 0;
  const began = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t = performance.now();
        await call(i);
        latencies.push(performance.now() - t);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const q = (p: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]);
  return { perSec: (n * 1000) / (Date.now() - began), p50: q(0.5), p99: q(0.99) };
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtflow-bench-api-'));
  const stack = await startBenchStack(dir, 0, { controller: false });
  const sim = await startSimulation(stack.config);
  const app = await buildApiServer({ inv: stack.inventory, client: stack.client, config: stack.config });
  try {
    await populateSimFleet(stack.inventory, { hosts: 100, vms: vmCount, seed: 1 });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const { token } = await createApiToken(
      stack.inventory,
      { name: 'bench', grants: [{ project: '*', role: 'operator' }] },
      'bench/api',
    );
    const http = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`${base}${url}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
      return res.json();
    };
    const api = new ApiClient(base, token);
    const listAll = () => api.list('/v1/vms?limit=1000');
    const listed = await listAll();
    if (listed.length !== vmCount) throw new Error(`the API listed ${listed.length} VMs, not ${vmCount}`);
    console.log(`api: ${vmCount} VMs on 100 simulated hosts, ${concurrency} lanes`);

    const listRounds = Math.max(10, Math.round(requests / 10));
    const listDirect = await measure(listRounds, () => listVms(stack.inventory));
    const listApi = await measure(listRounds, listAll);
    const pageDirect = await measure(requests, () =>
      pageOfVms(stack.inventory, { limit: PAGE, projects: 'all' }),
    );
    const pageApi = await measure(requests, () => http('GET', `/v1/vms?limit=${PAGE}`));

    // Each start stops a different running VM: the operation's start is measured, not its end.
    const vmIds = (
      await stack.inventory.vms
        .find({ state: 'running' })
        .limit(2 * requests)
        .toArray()
    ).map((v) => v._id);
    const ops = vmOperations(stack.client, stack.config);
    const startDirect = await measure(requests, (i) => ops.stop({ vmId: vmIds[i], gracefulTimeoutSec: 0 }));
    const startApi = await measure(requests, (i) =>
      http('POST', `/v1/vms/${vmIds[requests + i]}/stop`, { gracefulTimeoutSec: 0 }),
    );

    const row = (name: string, m: Measured) =>
      `  ${name.padEnd(44)} ${m.perSec.toFixed(1).padStart(8)} req/s   p50 ${String(m.p50).padStart(6)} ms   p99 ${String(m.p99).padStart(6)} ms`;
    const ratio = (api: Measured, direct: Measured) =>
      `    API / in-process: req/s ×${(api.perSec / direct.perSec).toFixed(2)}, p99 ×${(api.p99 / direct.p99).toFixed(2)}`;
    console.log(row(`all ${vmCount} VMs, in-process listVms`, listDirect));
    console.log(row(`all ${vmCount} VMs, HTTP API (pages of 1000)`, listApi));
    console.log(ratio(listApi, listDirect));
    console.log(row(`one page of ${PAGE} VMs, in-process pageOfVms`, pageDirect));
    console.log(row(`one page of ${PAGE} VMs, GET /v1/vms`, pageApi));
    console.log(ratio(pageApi, pageDirect));
    console.log(row('start an operation, in-process client', startDirect));
    console.log(row('start an operation, HTTP API', startApi));
    console.log(ratio(startApi, startDirect));
  } finally {
    await app.close();
    await sim.stop();
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
