import { planRetention, type RetentionItem } from '../../domain/retention';

/** A chain per day: a full at 00:00 and incrementals every 6 hours, for `days` days up to 2026-11-29. */
function catalogue(days: number): RetentionItem[] {
  const items: RetentionItem[] = [];
  const end = Date.parse('2026-11-29T18:00:00Z');
  for (let d = days - 1; d >= 0; d--) {
    let parent: string | null = null;
    for (const h of [0, 6, 12, 18]) {
      const at = new Date(end - d * 86_400_000 - (18 - h) * 3_600_000);
      const id = at.toISOString().slice(0, 13);
      items.push({ id, finishedAt: at, parentId: parent });
      parent = id;
    }
  }
  return items;
}

describe('retention', () => {
  test.each([
    [
      'keep-last 3 keeps the newest three, and their chain parents',
      { keepLast: 3 },
      ['2026-11-29T18', '2026-11-29T12', '2026-11-29T06', '2026-11-29T00'],
    ],
    [
      'keep-daily 3 keeps the last backup of each of three days, with parents',
      { keepDaily: 3 },
      [
        '2026-11-29T18',
        '2026-11-29T12',
        '2026-11-29T06',
        '2026-11-29T00',
        '2026-11-28T18',
        '2026-11-28T12',
        '2026-11-28T06',
        '2026-11-28T00',
        '2026-11-27T18',
        '2026-11-27T12',
        '2026-11-27T06',
        '2026-11-27T00',
      ],
    ],
    [
      'keep-last 1 then keep-daily 2: the day the last one covers does not count towards the two',
      { keepLast: 1, keepDaily: 2 },
      [
        '2026-11-29T18',
        '2026-11-29T12',
        '2026-11-29T06',
        '2026-11-29T00',
        '2026-11-28T18',
        '2026-11-28T12',
        '2026-11-28T06',
        '2026-11-28T00',
        '2026-11-27T18',
        '2026-11-27T12',
        '2026-11-27T06',
        '2026-11-27T00',
      ],
    ],
    [
      'keep-weekly 2 over 10 days keeps the newest of this ISO week and of last week',
      { keepWeekly: 2 },
      [
        '2026-11-29T18',
        '2026-11-29T12',
        '2026-11-29T06',
        '2026-11-29T00',
        '2026-11-22T18',
        '2026-11-22T12',
        '2026-11-22T06',
        '2026-11-22T00',
      ],
    ],
    [
      'keep-monthly 1 keeps the newest of November',
      { keepMonthly: 1 },
      ['2026-11-29T18', '2026-11-29T12', '2026-11-29T06', '2026-11-29T00'],
    ],
    ['an empty policy keeps nothing', {}, []],
  ])('%s', (_what, policy, expected) => {
    const items = catalogue(10);
    const plan = planRetention(items, policy);
    expect([...plan.keep.keys()].sort().reverse()).toEqual(expected);
    expect(plan.prune.length + plan.keep.size).toBe(items.length);
    // Never prune a parent of a kept backup.
    const byId = new Map(items.map((i) => [i.id, i]));
    for (const kept of plan.keep.keys()) {
      const parent = byId.get(kept)!.parentId;
      if (parent) expect(plan.prune).not.toContain(parent);
    }
  });

  test('protected backups stay and do not use up a rule', () => {
    const items = catalogue(3).map((i) => (i.id === '2026-11-27T00' ? { ...i, protected: true } : i));
    const plan = planRetention(items, { keepLast: 1 });
    expect(plan.keep.get('2026-11-27T00')).toBe('protected');
    expect(plan.keep.get('2026-11-29T18')).toBe('keep-last');
    expect(plan.keep.get('2026-11-29T00')).toBe('parent of kept 2026-11-29T18');
    expect(plan.keep.size).toBe(5);
  });
});
