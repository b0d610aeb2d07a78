/**
 * A rolling patch over a simulated fleet, through the real workflows on the real Temporal dev
 * server and FerretDB, with hosts and time simulated (the timing model, on a virtual clock).
 * Prints the modelled makespan, the ideal lower bound the timing model allows for the same
 * fleet and max-unavailable, their ratio, and the one-host-at-a-time sequential baseline
 * evaluated with the same timing model in this process.
 *
 *   npx tsx bench/rollout.ts [--hosts 500] [--vms 5000] [--max-unavailable 10]
 *   VIRTFLOW_DB_PROFILE=1 npx tsx bench/rollout.ts …   # also: where the database time went
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rolloutOperations } from '../client/rollout-operations';
import { batchSize } from '../domain/rollout';
import { makespanOf, peakOverlap, underfullStretches } from '../hypervisor/sim/spans';
import { hostPatchSeconds, hostPatchSecondsOf, type SimVmLoad } from '../hypervisor/sim/timing-model';
import { populateSimFleet, readSimSpans } from '../inventory/sim-fleet';
import { startSimulation } from '../worker/simulation';
import { startBenchStack } from './bench-stack';
import { dbProfileReport, profilingEnabled } from '../inventory/db-profile';
import { arg } from './args';

const hostCount = arg('hosts', 500);
const vmCount = arg('vms', 5000);
const maxUnavailablePct = arg('max-unavailable', 10);
const lanes = 2; // the evacuation's default migrations out of a host at once

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtflow-bench-rollout-'));
  const stack = await startBenchStack(dir, 0, { controller: false });
  const sim = await startSimulation(stack.config);
  try {
    const fleet = await populateSimFleet(stack.inventory, { hosts: hostCount, vms: vmCount, seed: 1 });
    const model = sim.fleet.model;

    // The timing model's view of the fleet as planned: each host's patch with its own VMs.
    const loads = new Map<string, SimVmLoad[]>(fleet.hosts.map((h) => [h, []]));
    for (const v of await stack.inventory.vms.find({}).toArray()) {
      loads.get(v.host!)!.push({ memoryMiB: v.memoryMiB, dirtyMiBps: Number(v.labels['sim-dirty-mibps']) });
    }
    const perHost = fleet.hosts.map((h) => hostPatchSeconds(model, loads.get(h)!, lanes));
    const k = batchSize(`${maxUnavailablePct}%`, hostCount);
    // One canary alone, then at most k at a time: no schedule beats the larger of the longest
    // host and the remaining work spread evenly over k slots.
    const [canary, ...rest] = perHost;
    const ideal = canary + Math.max(Math.max(...rest), rest.reduce((a, b) => a + b, 0) / k);
    const sequential = perHost.reduce((a, b) => a + b, 0);

    const started = Date.now();
    // With the profile on, say every minute how far the rollout is and where the database time went.
    const progress = profilingEnabled()
      ? setInterval(() => {
          void readSimSpans(stack.inventory, fleet.hosts).then((spans) =>
            console.log(
              `  … ${((Date.now() - started) / 1000).toFixed(0)} s: ${spans.length} hosts back, ` +
                `${sim.fleet.completed.length} migrations, clock at ${sim.fleet.clock.now()} s\n    ` +
                dbProfileReport(8).join('\n    '),
            ),
          );
        }, 60_000)
      : undefined;
    const rollouts = rolloutOperations(stack.client, stack.config);
    const op = await rollouts.start({
      name: 'bench',
      patch: 'security-2026-11',
      cluster: 'sim',
      maxUnavailable: `${maxUnavailablePct}%`,
    });
    const result = await op.result();
    clearInterval(progress);
    const wallSec = (Date.now() - started) / 1000;
    const spans = await readSimSpans(stack.inventory, fleet.hosts);
    const makespan = makespanOf(spans);
    let runs = 0;
    for await (const _ of stack.client.workflow.list({ query: 'WorkflowId = "rollout/bench"' })) runs++;

    const h = (s: number) => `${s} s (${(s / 3600).toFixed(2)} h)`;
    console.log(
      `rolling patch, simulated: ${hostCount} hosts, ${vmCount} VMs, max unavailable ${maxUnavailablePct}% (${k} hosts)`,
    );
    console.log(
      `  outcome: ${result.phase}, ${result.hosts.filter((x) => x.state === 'patched').length} patched, ${result.failures} failed`,
    );
    console.log(`  makespan (modelled):           ${h(makespan)}`);
    console.log(`  ideal lower bound (model):     ${h(Math.round(ideal))}`);
    console.log(`  ratio makespan / ideal:        ${(makespan / ideal).toFixed(3)}  (goal <= 1.10)`);
    console.log(`  sequential baseline (model):   ${h(sequential)}`);
    console.log(`  speed-up over sequential:      ${(sequential / makespan).toFixed(1)}x  (goal >= 10x)`);
    console.log(`  peak hosts out of service:     ${peakOverlap(spans)} (limit ${k})`);
    // Where a gap to the bound comes from: hosts out longer than modelled, or slots left idle.
    const meanSpan = spans.reduce((a, s) => a + s.endSec - s.startSec, 0) / spans.length;
    const meanModel = perHost.reduce((a, b) => a + b, 0) / perHost.length;
    console.log(
      `  mean host out of service:      ${meanSpan.toFixed(0)} s (model with planned VMs ${meanModel.toFixed(0)} s)`,
    );
    // The model again, with the VMs each host really evacuated (evacuees that landed on a host
    // not yet patched move twice): what is left of the gap is orchestration between steps.
    const moves = sim.fleet.completed;
    const meanActual =
      spans
        .map((s) =>
          hostPatchSecondsOf(
            model,
            moves
              .filter((m) => m.source === s.hostId && m.startedSec >= s.startSec && m.startedSec <= s.endSec)
              .map((m) => m.endSec - m.startedSec),
            lanes,
          ),
        )
        .reduce((a, b) => a + b, 0) / spans.length;
    console.log(
      `  mean host out of service, model with the VMs really evacuated: ${meanActual.toFixed(0)} s; ` +
        `${moves.length} migrations for ${vmCount} VMs`,
    );
    console.log(
      `  window use (sum of spans / (limit x makespan)): ${((100 * meanSpan * spans.length) / (k * makespan)).toFixed(0)}%`,
    );
    // Slots left empty while hosts still waited, after the canaries: each slot-second is lost.
    const starts = spans.map((s) => s.startSec).sort((a, b) => a - b);
    const afterCanaries = Math.min(...spans.filter((s) => s.startSec > starts[0]).map((s) => s.startSec));
    const underfull = underfullStretches(spans, k, afterCanaries, starts[starts.length - 1]);
    const idle = underfull.reduce((a, u) => a + (k - u.out) * (u.toSec - u.fromSec), 0);
    const longest = [...underfull].sort((a, b) => b.toSec - b.fromSec - (a.toSec - a.fromSec)).slice(0, 3);
    console.log(
      `  slot time idle while hosts waited: ${idle} slot-s (${((100 * idle) / (k * makespan)).toFixed(1)}% of the window)` +
        longest.map((u) => `; ${u.fromSec}-${u.toSec} s with ${u.out} out`).join(''),
    );
    // A host retried lost the time of its failed attempt: a whole turn of its slot, at worst.
    const retried = result.hosts.filter((x) => x.attempts > 1);
    console.log(
      `  hosts patched on a retry:      ${retried.length}${retried.length ? ` (${retried.map((x) => x.hostId).join(', ')})` : ''}`,
    );
    console.log(`  virtual clock: ${sim.fleet.clock.steps} steps`);
    console.log(`  runs of the parent (continue-as-new): ${runs}`);
    console.log(`  wall time: ${wallSec.toFixed(0)} s`);
    const profile = dbProfileReport();
    if (profile.length) console.log(`  database time (VIRTFLOW_DB_PROFILE):\n    ${profile.join('\n    ')}`);
  } finally {
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
