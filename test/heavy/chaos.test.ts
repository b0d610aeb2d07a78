import { killTargets } from '../../chaos/chaos-stack';
import { runChaos } from '../../chaos/run-chaos';

/**
 * The short seeded chaos run (README: "Chaos runs" for long ones). It owns its stack: its own
 * Temporal server and FerretDB, which it kills, beside the ones the other test files share.
 */
describe('chaos: processes killed at random moments lose nothing', () => {
  test('a short seeded run: every operation ends cleanly, no drift, no lost or doubled VM, nothing held', async () => {
    const lines: string[] = [];
    const report = await runChaos({
      ops: 12,
      seed: 20261129,
      killEverySec: [3, 8],
      // About 4 minutes here; past 20 the run stops and says where it hung, before jest's bound.
      deadlineSec: 1200,
      log: (l) => lines.push(l),
    });
    const context = `\n${report.violations.join('\n')}\n--- run log ---\n${lines.join('\n')}`;

    expect({ violations: report.violations, context }).toEqual({ violations: [], context });
    expect(report.ok).toBe(true);
    expect(report.drift).toEqual([]);
    expect(report.ops).toHaveLength(12);
    for (const op of report.ops) expect(['completed', 'rolled-back', 'rejected']).toContain(op.outcome);
    // The rolling patch over the three hosts is one of the operations, and it finished.
    expect(report.ops.filter((o) => o.kind === 'rollout').map((o) => o.outcome)).toEqual(['completed']);
    // Kills come in rounds over every target; a run of this length sees at least one full round.
    expect(new Set(report.kills.map((k) => k.target))).toEqual(new Set(killTargets));
    // The aimed faults that need no particular moment hit in every run: a database outage
    // longer than the loss interval and an agent restart outside maintenance, and nothing was
    // fenced (a violation otherwise).
    expect(report.faults['db-outage'].injected).toBeGreaterThanOrEqual(1);
    expect(report.faults['agent-restart'].injected).toBeGreaterThanOrEqual(1);
  }, 1_500_000);
});
