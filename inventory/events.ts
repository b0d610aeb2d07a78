import { randomBytes } from 'node:crypto';
import type { EventDoc } from './schemas';
import type { Inventory } from './db';
import { metrics } from '../domain/metrics';

/** Appends one audit event: every operation outcome leaves exactly one. */
export async function recordEvent(inv: Inventory, event: Omit<EventDoc, '_id' | 'at'>): Promise<EventDoc> {
  const at = new Date();
  const doc: EventDoc = { _id: `ev-${at.getTime()}-${randomBytes(4).toString('hex')}`, at, ...event };
  await inv.events.insertOne(doc);
  if (event.outcome !== 'info')
    metrics().outcomes.add(1, { operation: event.operation, outcome: event.outcome });
  return doc;
}
