// @ts-check
/**
 * Prints each test file's time at the end of a run, slowest first, and records the times in
 * `.virtflow/test-times.json`, where `scripts/test-times` compares them with the committed
 * budgets. Times are reported, never asserted: a slow machine must not fail a test.
 */
const fs = require('node:fs');
const path = require('node:path');

class SuiteTimes {
  /** @param {import('@jest/reporters').Config.GlobalConfig} globalConfig */
  constructor(globalConfig) {
    this.rootDir = globalConfig.rootDir;
    this.file = path.join(this.rootDir, '.virtflow', 'test-times.json');
  }

  /**
   * @param {unknown} _contexts
   * @param {import('@jest/reporters').AggregatedResult} results
   */
  onRunComplete(_contexts, results) {
    const rows = results.testResults
      .map((r) => ({
        suite: path.relative(this.rootDir, r.testFilePath),
        tier: r.displayName?.name ?? '',
        seconds: Math.round((r.perfStats.end - r.perfStats.start) / 100) / 10,
        tests: r.numPassingTests + r.numFailingTests,
        passed: r.numFailingTests === 0 && !r.testExecError,
      }))
      .sort((a, b) => b.seconds - a.seconds);
    if (rows.length === 0) return;
    const wallSeconds = Math.round((Date.now() - results.startTime) / 1000);
    const lines = rows.map(
      (r) =>
        `  ${r.seconds.toFixed(1).padStart(7)} s  ${r.tier.padEnd(12)} ${r.suite}${r.passed ? '' : '  (failed)'}`,
    );
    const byTier = new Map();
    for (const r of rows) byTier.set(r.tier, (byTier.get(r.tier) ?? 0) + r.seconds);
    const tiers = [...byTier].map(([t, s]) => `${t} ${Math.round(s)} s`).join(', ');
    process.stdout.write(
      `\nTime per test file (${rows.length} files, ${wallSeconds} s wall; summed by tier: ${tiers}):\n` +
        `${lines.join('\n')}\n` +
        'Compare with the budgets: scripts/test-times\n',
    );

    // Merge with earlier runs, so `npm test` and `npm run test:all` together cover every file.
    let recorded = {};
    try {
      recorded = JSON.parse(fs.readFileSync(this.file, 'utf8'));
    } catch {
      // first run
    }
    const at = new Date().toISOString();
    for (const r of rows) recorded[r.suite] = { tier: r.tier, seconds: r.seconds, passed: r.passed, at };
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    fs.writeFileSync(this.file, JSON.stringify(recorded, null, 2) + '\n');
  }
}

module.exports = SuiteTimes;
