import { createHash } from 'node:crypto';
import type { Inventory } from './db';
import { recordEvent } from './events';
import { newestFirstPage, type PageRequest } from './pages';
import type { DriftDoc, DriftKind } from './schemas';

export interface DriftFinding {
  kind: DriftKind;
  hostId: string | null;
  subject: string;
  message: string;
  /** Set when a safe fix-up was applied: what it did. */
  fixed?: string;
  /** What an operator does about an open finding, when it is not `virtflow audit fix <id>`. */
  fix?: string;
}

/** The same drift always gets the same id: `<kind>-<hash of host and subject>`. */
export function driftId(f: Pick<DriftFinding, 'kind' | 'hostId' | 'subject'>): string {
  const h = createHash('sha1')
    .update(`${f.hostId ?? ''}|${f.subject}`)
    .digest('hex')
    .slice(0, 12);
  return `${f.kind}-${h}`;
}

/**
 * Records a finding: a new drift (or one that came back) gets a document and an audit event;
 * one still open only has its last sighting updated. Only the reconciler writes drift, one
 * scope (a host, or the fleet) at a time, so the read-then-write needs no lock.
 */
export async function recordDrift(inv: Inventory, f: DriftFinding): Promise<DriftDoc> {
  const _id = driftId(f);
  const now = new Date();
  const existing = await inv.drift.findOne({ _id });
  const state = f.fixed ? 'fixed' : 'open';
  const fix = f.fixed ?? f.fix ?? `virtflow audit fix ${_id}`;
  if (existing && existing.state === 'open' && state === 'open') {
    await inv.drift.updateOne({ _id }, { $set: { lastSeenAt: now, message: f.message, updatedAt: now } });
    return { ...existing, lastSeenAt: now, message: f.message };
  }
  const doc: DriftDoc = {
    _id,
    createdAt: existing?.createdAt ?? now,
    updatedAt: now,
    revision: (existing?.revision ?? 0) + 1,
    kind: f.kind,
    hostId: f.hostId,
    subject: f.subject,
    message: f.message,
    state,
    fix,
    lastSeenAt: now,
  };
  await inv.drift.replaceOne({ _id }, doc, { upsert: true });
  await recordEvent(inv, {
    operation: 'reconcile',
    subject: f.subject,
    outcome: f.fixed ? 'completed' : 'info',
    message: `drift ${f.kind}: ${f.message}${f.fixed ? ` — fixed: ${f.fixed}` : ` — fix with: ${fix}`}`,
    details: { driftId: _id, hostId: f.hostId },
  });
  return doc;
}

/** Open drift of a scope that this pass no longer found is resolved. */
export function resolveUnseen(
  inv: Inventory,
  scope: { hostId: string | null; kinds: readonly DriftKind[] },
  seen: string[],
): Promise<number> {
  return resolveOpen(inv, scope, (d) => seen.includes(d._id));
}

/**
 * Open drift of a scope not seen again since `since` is resolved: a pass walked in pages records
 * each sighting on its finding (`lastSeenAt`) instead of carrying a list of what it saw.
 */
export function resolveNotSeenSince(
  inv: Inventory,
  scope: { hostId: string | null; kinds: readonly DriftKind[] },
  since: Date,
): Promise<number> {
  return resolveOpen(inv, scope, (d) => d.lastSeenAt >= since);
}

async function resolveOpen(
  inv: Inventory,
  scope: { hostId: string | null; kinds: readonly DriftKind[] },
  stillThere: (d: DriftDoc) => boolean,
): Promise<number> {
  const open = await inv.drift.find({ state: 'open', hostId: scope.hostId }).toArray();
  let n = 0;
  for (const d of open) {
    if (!scope.kinds.includes(d.kind) || stillThere(d)) continue;
    await inv.drift.updateOne({ _id: d._id }, { $set: { state: 'resolved', updatedAt: new Date() } });
    n++;
  }
  return n;
}

/** Drift newest first: open and fixed, or with `all` resolved too; at most `limit`. */
export function listDrift(
  inv: Inventory,
  opts: { all?: boolean } & Partial<PageRequest> = {},
): Promise<DriftDoc[]> {
  return newestFirstPage(
    inv.drift,
    opts.all ? {} : { state: { $in: ['open', 'fixed'] } },
    'lastSeenAt',
    opts,
  );
}
