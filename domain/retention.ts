import type { RetentionPolicy } from './backup';

/**
 * Which backups a retention policy keeps, the way Proxmox Backup Server decides it: the rules
 * keep-last, -hourly, -daily, -weekly, -monthly, -yearly are applied in that order, newest
 * first; each keeps the newest backup of each of its last N periods that an earlier rule has
 * not already covered. Protected backups are always kept. Then one rule of our own: a backup
 * that a kept backup depends on (its chain's parents) is kept too, whatever the rules say.
 */
export interface RetentionItem {
  id: string;
  finishedAt: Date;
  parentId: string | null;
  protected?: boolean;
}

export interface RetentionPlan {
  keep: Map<string, string>;
  prune: string[];
}

type PeriodOf = (d: Date) => string;

const pad = (n: number) => String(n).padStart(2, '0');

/** ISO week: the year it belongs to and its number (weeks start on Monday). */
function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}-W${pad(week)}`;
}

const rules: [keyof RetentionPolicy, string, PeriodOf | null][] = [
  ['keepLast', 'keep-last', null],
  ['keepHourly', 'keep-hourly', (d) => d.toISOString().slice(0, 13)],
  ['keepDaily', 'keep-daily', (d) => d.toISOString().slice(0, 10)],
  ['keepWeekly', 'keep-weekly', isoWeek],
  ['keepMonthly', 'keep-monthly', (d) => d.toISOString().slice(0, 7)],
  ['keepYearly', 'keep-yearly', (d) => d.toISOString().slice(0, 4)],
];

export function planRetention(items: RetentionItem[], policy: RetentionPolicy): RetentionPlan {
  const newestFirst = [...items].sort(
    (a, b) => b.finishedAt.getTime() - a.finishedAt.getTime() || (a.id < b.id ? 1 : -1),
  );
  const keep = new Map<string, string>();
  for (const item of newestFirst) if (item.protected) keep.set(item.id, 'protected');

  for (const [field, label, periodOf] of rules) {
    const count = policy[field];
    if (!count) continue;
    // keep-last counts backups; the others count periods.
    const key = (i: RetentionItem) => (periodOf ? periodOf(i.finishedAt) : i.id);
    // Periods already represented by a backup an earlier rule kept do not count again.
    const covered = new Set(newestFirst.filter((i) => keep.has(i.id)).map(key));
    const taken = new Set<string>();
    for (const item of newestFirst) {
      if (keep.has(item.id)) continue;
      const p = key(item);
      if (covered.has(p) || taken.has(p)) continue;
      if (taken.size >= count) break;
      taken.add(p);
      keep.set(item.id, label);
    }
  }

  // A kept incremental needs every parent of its chain.
  const byId = new Map(items.map((i) => [i.id, i]));
  for (const id of [...keep.keys()]) {
    for (let parent = byId.get(id)?.parentId; parent; parent = byId.get(parent)?.parentId ?? null) {
      if (!keep.has(parent)) keep.set(parent, `parent of kept ${id}`);
    }
  }
  return { keep, prune: newestFirst.filter((i) => !keep.has(i.id)).map((i) => i.id) };
}
