import type { CommandStartedEvent, CommandSucceededEvent, MongoClient } from 'mongodb';

/**
 * Where the database time goes, by command, collection and filter shape: on FerretDB only a
 * filter of exactly `{_id}` is indexed, so the shape says whether a query scans. Enabled by
 * VIRTFLOW_DB_PROFILE for benchmarks; every client in the process adds to the same table.
 */
const stats = new Map<string, { calls: number; totalMs: number; maxMs: number }>();
const pending = new Map<number, string>();

function shapeOf(e: CommandStartedEvent): string {
  const c = e.command as Record<string, unknown>;
  const first = (xs: unknown) => (Array.isArray(xs) ? (xs[0] as Record<string, unknown>) : undefined);
  const filter = (c.filter ?? first(c.updates)?.q ?? first(c.deletes)?.q ?? {}) as object;
  // A getMore names its cursor, not its query: count it under its collection.
  if (e.commandName === 'getMore') return `getMore ${String(c.collection)}`;
  return `${e.commandName} ${String(c[e.commandName])} {${Object.keys(filter).join(',')}}`;
}

export const profilingEnabled = () => Boolean(process.env.VIRTFLOW_DB_PROFILE);

export function profileCommands(client: MongoClient): void {
  client.on('commandStarted', (e: CommandStartedEvent) => pending.set(e.requestId, shapeOf(e)));
  client.on('commandSucceeded', (e: CommandSucceededEvent) => {
    const key = pending.get(e.requestId);
    pending.delete(e.requestId);
    if (!key) return;
    const s = stats.get(key) ?? stats.set(key, { calls: 0, totalMs: 0, maxMs: 0 }).get(key)!;
    s.calls++;
    s.totalMs += e.duration;
    s.maxMs = Math.max(s.maxMs, e.duration);
  });
}

/** The commands that took the most time in all, one line each. */
export function dbProfileReport(top = 15): string[] {
  return [...stats.entries()]
    .sort(([, a], [, b]) => b.totalMs - a.totalMs)
    .slice(0, top)
    .map(
      ([key, s]) =>
        `${(s.totalMs / 1000).toFixed(1).padStart(8)} s  ${String(s.calls).padStart(7)} calls  ` +
        `mean ${(s.totalMs / s.calls).toFixed(1).padStart(7)} ms  max ${s.maxMs.toFixed(0).padStart(6)} ms  ${key}`,
    );
}

/** Every profiled command's time, summed (ms). */
export function dbProfileTotalMs(): number {
  let total = 0;
  for (const s of stats.values()) total += s.totalMs;
  return total;
}

/** Forgets what was measured so far (a benchmark measures its phases apart). */
export function resetDbProfile(): void {
  stats.clear();
}
