/**
 * `npm run chaos -- --ops N --seed S`: a chaos run on a local stack of its own (see
 * run-chaos.ts). Prints operations by kind and outcome, kills by target, drift found and any
 * broken promise; exits non-zero when a promise was broken.
 */
import { Command, InvalidArgumentError } from 'commander';
import { printTable } from '../client/output';
import { killTargets } from './chaos-stack';
import { faultClasses } from './faults';
import { opKinds } from './operations';
import { runChaos, type ChaosReport } from './run-chaos';

function wholeNumber(min: number) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number >= ${min}`);
    return n;
  };
}

function killEvery(value: string): [number, number] {
  const m = /^(\d+)-(\d+)$/.exec(value);
  const lo = Number(m?.[1]);
  const hi = Number(m?.[2]);
  if (!m || lo < 1 || hi < lo) throw new InvalidArgumentError('expected LO-HI seconds with 1 <= LO <= HI');
  return [lo, hi];
}

export function printChaosReport(r: ChaosReport): void {
  const outcomes = ['completed', 'rolled-back', 'rejected', 'stuck'] as const;
  console.log('\noperations');
  printTable(
    opKinds
      .map((kind) => {
        const mine = r.ops.filter((o) => o.kind === kind);
        return {
          kind,
          total: mine.length,
          ...Object.fromEntries(outcomes.map((o) => [o, mine.filter((m) => m.outcome === o).length])),
        };
      })
      .filter((row) => row.total > 0),
    ['kind', 'total', ...outcomes],
  );
  console.log('\nkills');
  printTable(
    killTargets.map((target) => ({ target, kills: r.kills.filter((k) => k.target === target).length })),
    ['target', 'kills'],
  );
  console.log('\naimed faults (each held if no promise below is broken)');
  printTable(
    faultClasses.map((fault) => ({
      fault,
      injected: r.faults[fault].injected,
      'what was hit': r.faults[fault].hits.slice(0, 3).join('; ') || '-',
    })),
    ['fault', 'injected', 'what was hit'],
  );
  console.log(`\ndrift found after settling: ${r.drift.length}`);
  for (const d of r.drift) console.log(`  ${d.kind} ${d.subject}: ${d.message}`);
  console.log(
    r.ok
      ? `\nseed ${r.seed}: every promise held`
      : `\nseed ${r.seed}: ${r.violations.length} promise(s) broken (logs: ${r.runDir})`,
  );
  for (const v of r.violations) console.log(`  - ${v}`);
}

if (require.main === module) {
  const o = new Command('chaos')
    .description(
      'mixed operations on a local stack while its processes are killed; then check nothing was lost',
    )
    .option('--ops <n>', 'operations to run', wholeNumber(1), 20)
    .option('--seed <n>', 'seed for the operations and the kills', wholeNumber(0), Date.now() % 100_000)
    .option('--concurrency <n>', 'operations at once', wholeNumber(1), 2)
    .option('--kill-every <lo-hi>', 'pause between two kills, in seconds', killEvery, [6, 20])
    .option('--keep', 'keep the run directory (logs, databases) even when every promise held')
    .parse()
    .opts<{ ops: number; seed: number; concurrency: number; killEvery: [number, number]; keep?: boolean }>();
  console.log(`chaos: ${o.ops} operations, seed ${o.seed}`);
  runChaos({ ...o, killEverySec: o.killEvery, log: (line) => console.log(`chaos: ${line}`) }).then(
    (report) => {
      printChaosReport(report);
      process.exit(report.ok ? 0 : 1);
    },
    (err: unknown) => {
      console.error(`chaos: ${(err as Error).message}`);
      process.exit(2);
    },
  );
}
