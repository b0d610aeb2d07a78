import type { Collection, Document, Filter } from 'mongodb';
import { DEFAULT_PROJECT } from '../domain/access';
import { ValidationError } from '../domain/errors';

/** A page of a listing: at most `limit` items, those after the item `after` names (its id). */
export interface PageRequest {
  after?: string;
  limit: number;
}

/**
 * One page of a collection newest first by `key`, then by id, as a keyset: the cursor is the id
 * of the last item of the page before, so a page is read by a range, not by skipping, and a link
 * stays short. An `after` that names nothing is refused by field.
 */
export async function newestFirstPage<T extends Document & { _id: string }>(
  collection: Collection<T>,
  filter: Filter<T>,
  key: keyof T & string,
  page: Partial<PageRequest>,
): Promise<T[]> {
  let f = filter;
  if (page.after) {
    const last = await collection.findOne({ _id: page.after } as Filter<T>);
    if (!last)
      throw new ValidationError('after', `"${page.after}" is not in this listing: start again without it`);
    const at = last[key] as unknown;
    f = {
      $and: [filter, { $or: [{ [key]: { $lt: at } }, { [key]: at, _id: { $lt: page.after } }] }],
    } as Filter<T>;
  }
  const found = collection.find(f).sort({ [key]: -1, _id: -1 });
  return (page.limit ? found.limit(page.limit) : found).toArray() as Promise<T[]>;
}

/**
 * A query's condition that `field` names one of `projects` (`all`: any). A document from before
 * projects existed has none: it is the default project's.
 */
export function inProjects(field: string, projects: string[] | 'all'): Document {
  if (projects === 'all') return {};
  const either: Document[] = [{ [field]: { $in: projects } }];
  if (projects.includes(DEFAULT_PROJECT)) either.push({ [field]: { $exists: false } });
  return { $or: either };
}
