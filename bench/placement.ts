/**
 * Placement decision time over 10,000 host documents: p50 and p99 of `placeVm`, against a
 * baseline measured in the same run (one linear pass that only checks free memory), so the
 * ratio says what the named filters, reasons and weights cost.
 *
 *   npx tsx bench/placement.ts [--hosts 10000] [--rounds 300]
 */
import { placeVm, type PlacementHost } from '../domain/placement';
import { arg } from './args';

const hostCount = arg('hosts', 10_000);
const rounds = arg('rounds', 300);
const now = Date.now();

// A deterministic fleet: a mix of loads, some hosts down, in maintenance, stale or labelled.
let seed = 42;
const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const hosts: PlacementHost[] = Array.from({ length: hostCount }, (_, i) => {
  const memory = [65536, 131072, 262144][i % 3];
  return {
    id: `hv-${String(i).padStart(5, '0')}`,
    state: rand() < 0.02 ? 'down' : 'up',
    maintenance: rand() < 0.03,
    labels: { rack: `r${i % 40}` },
    cpuFlags: rand() < 0.1 ? ['sse2'] : ['sse2', 'avx2', 'aes'],
    qemuVersion: '7.2.22',
    heartbeatAt: new Date(now - (rand() < 0.01 ? 120_000 : 3_000)),
    factsIntervalMs: 10_000,
    allocatable: { memoryMiB: memory, vcpus: 256 },
    used: {
      memoryMiB: Math.floor(rand() * memory),
      vcpus: Math.floor(rand() * 256),
      runningVms: Math.floor(rand() * 80),
    },
  };
});
const request = { memoryMiB: 8192, vcpus: 4, requiredCpuFlags: ['avx2'] };

function baseline(): string | null {
  let best: string | null = null;
  let bestFree = -1;
  for (const h of hosts) {
    const free = h.allocatable.memoryMiB - h.used.memoryMiB;
    if (free >= request.memoryMiB && free > bestFree) {
      best = h.id;
      bestFree = free;
    }
  }
  return best;
}

function measure(fn: () => unknown): { p50: number; p99: number } {
  for (let i = 0; i < 20; i++) fn(); // warm up the JIT
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  samples.sort((a, b) => a - b);
  return { p50: samples[Math.floor(rounds * 0.5)], p99: samples[Math.floor(rounds * 0.99)] };
}

const base = measure(baseline);
const full = measure(() => placeVm(hosts, request, now));
const decision = placeVm(hosts, request, now);
console.log(`placement over ${hostCount} hosts, ${rounds} rounds`);
console.log(
  `  eligible ${decision.ranked.length}, rejected ${Object.keys(decision.rejected).length}, chosen ${decision.chosen}`,
);
console.log(`  baseline (memory-only scan): p50 ${base.p50.toFixed(3)} ms  p99 ${base.p99.toFixed(3)} ms`);
console.log(
  `  placeVm (filters + reasons + weights): p50 ${full.p50.toFixed(3)} ms  p99 ${full.p99.toFixed(3)} ms`,
);
console.log(
  `  ratio placeVm/baseline: p50 ${(full.p50 / base.p50).toFixed(1)}x  p99 ${(full.p99 / base.p99).toFixed(1)}x`,
);
