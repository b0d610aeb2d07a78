/**
 * Fleet-wide reads that a paged pass makes once, kept in the controller's memory for its pages.
 * A pass over 50,000 VMs walks its lists 500 at a time, one activity per page; FerretDB answers
 * a "next page after this id" query by reading the whole collection, so a pass that asked it per
 * page read the fleet a hundred times (minutes per pass). Each snapshot belongs to one pass or
 * run (its key); the oldest is dropped once KEPT are held (policies run side by side), and a
 * controller that restarted reads a snapshot again once.
 */
export class PassSnapshots {
  static readonly KEPT = 8;
  private readonly entries = new Map<string, Promise<unknown>>();

  /** The snapshot `name` of the pass `key`, read by `load` the first time it is asked for. */
  get<T>(name: string, key: string, load: () => Promise<T>): Promise<T> {
    const id = `${name}\u0000${key}`;
    const held = this.entries.get(id);
    if (held) return held as Promise<T>;
    const value = load();
    this.entries.set(id, value);
    if (this.entries.size > PassSnapshots.KEPT) this.entries.delete(this.entries.keys().next().value!);
    // A failed read is not kept: the page's retry reads again.
    value.catch(() => {
      if (this.entries.get(id) === value) this.entries.delete(id);
    });
    return value;
  }
}

/** Up to `limit` of the sorted `items` whose id comes after `after`, and the id to continue after. */
export function pageAfter<T>(
  items: readonly T[],
  idOf: (item: T) => string,
  after: string | undefined,
  limit: number,
): { page: T[]; next?: string } {
  let lo = 0;
  let hi = items.length;
  // The first item after `after`, by binary search over the sorted ids.
  while (after !== undefined && lo < hi) {
    const mid = (lo + hi) >> 1;
    if (idOf(items[mid]) <= after) lo = mid + 1;
    else hi = mid;
  }
  const page = items.slice(after === undefined ? 0 : lo, (after === undefined ? 0 : lo) + limit);
  return { page, next: page.length === limit ? idOf(page[page.length - 1]) : undefined };
}
