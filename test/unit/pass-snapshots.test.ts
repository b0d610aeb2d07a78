import { pageAfter, PassSnapshots } from '../../activities/controller/pass-snapshots';

describe('paging a snapshot read once per pass', () => {
  const ids = Array.from({ length: 7 }, (_, i) => `vm-${i + 1}`);
  const id = (s: string) => s;

  test('pages follow each other by id, each item once, the last one without a next', () => {
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const { page, next } = pageAfter(ids, id, after, 3);
      seen.push(...page);
      after = next;
    } while (after !== undefined);
    expect(seen).toEqual(ids);
    // An id no longer in the snapshot (it was read again after a restart) still finds its place.
    expect(pageAfter(['a', 'c', 'e'], id, 'b', 2)).toEqual({ page: ['c', 'e'], next: 'e' });
    expect(pageAfter(['a', 'c', 'e'], id, 'e', 2)).toEqual({ page: [], next: undefined });
  });

  test('a snapshot is read once per key, a failed read is read again, and the oldest goes first', async () => {
    const snapshots = new PassSnapshots();
    let reads = 0;
    const load = async () => ++reads;
    expect(await snapshots.get('catalogue', 'pass-1', load)).toBe(1);
    expect(await snapshots.get('catalogue', 'pass-1', load)).toBe(1);
    expect(await snapshots.get('catalogue', 'pass-2', load)).toBe(2);

    const failing = snapshots.get('catalogue', 'pass-3', () => Promise.reject(new Error('database down')));
    await expect(failing).rejects.toThrow('database down');
    expect(await snapshots.get('catalogue', 'pass-3', load)).toBe(3);

    for (let i = 0; i < PassSnapshots.KEPT; i++) await snapshots.get('selection', `run-${i}`, load);
    // pass-1 was the oldest: read again.
    expect(await snapshots.get('catalogue', 'pass-1', load)).toBe(reads);
  });
});
