import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import seedrandom from 'seedrandom';
import { connectClient } from '../client/temporal';
import { dataPaths, installed } from '../domain/config';
import { localQemuHost } from '../hypervisor/local-qemu-host';
import { importImage } from '../inventory/images';
import { localHosts } from '../scripts/services/entry-points';
import { openInventory } from '../inventory/db';
import { ChaosStack, FACTS_INTERVAL_SEC, killTargets, type KillTarget } from './chaos-stack';
import { faultClasses, faultInjector, noFaults, type FaultClass, type FaultRecord } from './faults';
import { checkInvariants, settle, type Verdict } from './invariants';
import { chaosOperations, type ChaosModel, type OpRecord } from './operations';

export interface ChaosOptions {
  ops: number;
  seed: number;
  /** Operations running at once. */
  concurrency?: number;
  /** Bounds of the pause between two kills, in seconds. */
  killEverySec?: [number, number];
  /** Keep the run directory (logs, databases) for inspection. */
  keep?: boolean;
  /** Inject the aimed faults of chaos/faults.ts besides the random kills (default on). */
  faults?: boolean;
  /**
   * The whole run's bound, in seconds: past it the run stops and reports, as a violation, what
   * it was doing and which operations were still in flight (a hang then says where it hung).
   */
  deadlineSec?: number;
  log?: (line: string) => void;
}

export interface ChaosReport extends Verdict {
  seed: number;
  runDir: string;
  ops: OpRecord[];
  kills: { target: KillTarget; atSec: number }[];
  /** Per aimed fault class: how often it hit its moment, and what it hit. */
  faults: Record<FaultClass, FaultRecord>;
  ok: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function shuffled<T>(xs: T[], rng: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/**
 * A chaos run: `ops` operations (create, migrate, backup, restore, stop, start, delete and one
 * rolling patch) on a local stack of its own, while the seed picks moments to SIGKILL the
 * controller, a host agent, the Temporal server or FerretDB. Then everything settles and the
 * invariants are checked. The seed fixes which operations and kills happen, in which order;
 * the machine's speed still decides what each kill interrupts.
 */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => undefined);
  const rng = seedrandom(String(opts.seed));
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-chaos-'));
  log(`run directory ${runDir}`);
  const stack = await ChaosStack.start(runDir);
  const inv = await openInventory(stack.config);
  const client = await connectClient(stack.config);
  const report: ChaosReport = {
    seed: opts.seed,
    runDir,
    ops: [],
    kills: [],
    faults: noFaults(),
    drift: [],
    violations: [],
    ok: false,
  };
  const model: ChaosModel = {
    vms: new Set(),
    backups: [],
    busy: new Set(),
    counter: 0,
    rolloutDone: false,
  };
  let running = true;
  let phase = 'starting';

  const execute = async () => {
    await importImage(inv, dataPaths(stack.config.dataDir).images, {
      name: 'debian-busybox',
      file: installed.guestDisk,
    });
    await settle(client, inv);
    log(`stack up (Temporal UI ${stack.config.temporal.uiUrl})`);
    phase = 'running operations';

    const ops = chaosOperations(client, stack.config, inv, rng, log);
    const began = Date.now();
    let next = 0;

    const lane = async () => {
      while (running && next < opts.ops) {
        const index = next++;
        const { kind, subject } = await ops.choose(model, index, opts.ops);
        log(`op ${index + 1}/${opts.ops}: ${kind} ${subject}`);
        const rec = await ops.run(kind, subject, model, kind === 'rollout' ? 900_000 : 360_000);
        log(
          `op ${index + 1}/${opts.ops}: ${kind} ${subject} ${rec.outcome}${rec.reason ? `: ${rec.reason}` : ''}`,
        );
        report.ops.push(rec);
      }
    };

    const [lo, hi] = opts.killEverySec ?? [6, 20];
    let round: KillTarget[] = [];
    const killer = async () => {
      while (running) {
        const pause = (lo + rng() * (hi - lo)) * 1000;
        // Targets come in seeded rounds, each once per round, so even a short run hits them all.
        if (round.length === 0) round = shuffled([...killTargets], rng);
        const target = round.pop()!;
        const restartAfter = 500 + rng() * 2500;
        const until = Date.now() + pause;
        while (running && Date.now() < until) await sleep(200);
        if (!running) return;
        log(`kill -9 ${target}`);
        report.kills.push({ target, atSec: Math.round((Date.now() - began) / 1000) });
        await stack.kill(target);
        await sleep(restartAfter);
        await stack.restart(target);
      }
    };

    // The aimed faults: the two that need no moment first (so even a short run has them),
    // then the others in a seeded order, each waiting for its moment, round after round.
    const faults = faultInjector({
      stack,
      client: () => client,
      config: stack.config,
      inv,
      lossIntervalMs: 3 * FACTS_INTERVAL_SEC * 1000,
      rng,
      running: () => running,
      log,
    });
    report.faults = faults.records;
    const aimer = async () => {
      let order: FaultClass[] = ['db-outage', 'agent-restart'];
      while (running && opts.faults !== false) {
        if (order.length === 0) order = shuffled([...faultClasses], rng);
        await faults.inject[order.shift()!]();
        const until = Date.now() + (5 + rng() * 10) * 1000;
        while (running && Date.now() < until) await sleep(200);
      }
    };

    const killing = killer();
    const aiming = aimer();
    await Promise.all(Array.from({ length: opts.concurrency ?? 2 }, lane));
    running = false;
    await killing;
    await aiming;
    phase = 'restarting FerretDB';
    await stack.restart('ferretdb');
    log('operations done; waiting for the stack to settle');
    phase = 'settling';
    await settle(client, inv);
    phase = 'checking the invariants';
    const verdict = await checkInvariants(client, stack.config, inv, model);
    Object.assign(report, verdict);
    const stuck = report.ops.filter((o) => o.outcome === 'stuck');
    for (const o of stuck) report.violations.push(`${o.kind} ${o.subject} did not end: ${o.reason}`);
  };

  try {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<true>((r) => {
      if (opts.deadlineSec !== undefined) timer = setTimeout(() => r(true), opts.deadlineSec * 1000);
    });
    const overran = await Promise.race([execute().then(() => false), deadline]).finally(() =>
      clearTimeout(timer),
    );
    if (overran) {
      running = false;
      report.violations.push(
        `the run did not end within ${opts.deadlineSec} s: it was ${phase}; ` +
          `operations in flight: ${[...model.busy].join(', ') || 'none'}`,
      );
    }
    report.ok = report.violations.length === 0;
    return report;
  } catch (err) {
    report.violations.push(`the run itself failed: ${(err as Error).message}`);
    return report;
  } finally {
    await client.connection.close().catch(() => undefined);
    await inv.close().catch(() => undefined);
    await stack.stop();
    powerOffLeftovers(stack.config.dataDir);
    if (!opts.keep && report.ok) fs.rmSync(runDir, { recursive: true, force: true });
  }
}

/** No guest of the local hosts under `dataDir` outlives a run, whatever happened to it. */
export function powerOffLeftovers(dataDir: string): void {
  for (const { hostId } of localHosts) {
    const q = localQemuHost(dataDir, hostId);
    for (const g of q.list()) q.kill(g.vmId);
  }
}
