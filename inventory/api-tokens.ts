import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { grantSchema, type Actor, type Grant } from '../domain/access';
import { NotFoundError, parseInput, ValidationError } from '../domain/errors';
import { idSchema } from '../domain/ids';
import type { Inventory } from './db';

/**
 * API tokens. A token is `vft_<id>_<secret>`: the id finds the document by `_id` (the one lookup
 * FerretDB answers without a scan), the secret is checked against its SHA-256. The secret is 32
 * random bytes, so a plain hash is enough (no password stretching); it is shown once, at
 * creation, and never stored.
 */
export const apiTokenSchema = z.object({
  _id: z.string().regex(/^[0-9a-f]{16}$/),
  name: idSchema,
  secretSha256: z.string().regex(/^[0-9a-f]{64}$/),
  grants: z.array(grantSchema).min(1),
  createdAt: z.date(),
  createdBy: z.string(),
  expiresAt: z.date().nullable(),
  revokedAt: z.date().nullable(),
});
export type ApiTokenDoc = z.infer<typeof apiTokenSchema>;
/** What listing tokens shows: never the hash. */
export type ApiTokenView = Omit<ApiTokenDoc, 'secretSha256'>;

export const createTokenRequestSchema = z.strictObject({
  name: idSchema,
  grants: z.array(grantSchema).min(1, 'must grant at least one role'),
  /** Days until the token stops working; none means it lasts until revoked. */
  expiresInDays: z.number().int().min(1).max(3650).optional(),
});
export type CreateTokenRequest = z.input<typeof createTokenRequestSchema>;

const TOKEN_PATTERN = /^vft_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Creates a token; the returned `token` is the only time its secret exists outside the caller. */
export async function createApiToken(
  inv: Inventory,
  req: CreateTokenRequest,
  createdBy: string,
): Promise<{ token: string; view: ApiTokenView }> {
  const spec = parseInput(createTokenRequestSchema, req, 'token');
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const now = new Date();
  const doc: ApiTokenDoc = {
    _id: id,
    name: spec.name,
    secretSha256: sha256(secret),
    grants: spec.grants,
    createdAt: now,
    createdBy,
    expiresAt: spec.expiresInDays ? new Date(now.getTime() + spec.expiresInDays * 86_400_000) : null,
    revokedAt: null,
  };
  await inv.apiTokens.insertOne(doc);
  return { token: `vft_${id}_${secret}`, view: viewOf(doc) };
}

/** Why a presented token does not authenticate; one reason each, none of them a secret. */
export type TokenRefusal = 'malformed' | 'unknown' | 'revoked' | 'expired';

/** The actor a presented token stands for, or why it does not. */
export async function authenticateToken(
  inv: Inventory,
  presented: string,
  now = new Date(),
): Promise<Actor | TokenRefusal> {
  const m = TOKEN_PATTERN.exec(presented);
  if (!m) return 'malformed';
  const doc = await inv.apiTokens.findOne({ _id: m[1] });
  if (!doc) return 'unknown';
  const expected = Buffer.from(doc.secretSha256, 'hex');
  if (!timingSafeEqual(expected, Buffer.from(sha256(m[2]), 'hex'))) return 'unknown';
  return liveActor(doc, now);
}

function liveActor(doc: ApiTokenDoc, now: Date): Actor | TokenRefusal {
  if (doc.revokedAt) return 'revoked';
  if (doc.expiresAt && doc.expiresAt <= now) return 'expired';
  return { name: `token:${doc.name}`, tokenId: doc._id, grants: doc.grants as Grant[] };
}

/**
 * The actor of a verified client certificate: its subject CN is a token's id, and the token's
 * grants, expiry and revocation apply as they do to its secret.
 */
export async function authenticateTokenId(
  inv: Inventory,
  id: string,
  now = new Date(),
): Promise<Actor | TokenRefusal> {
  if (!/^[0-9a-f]{16}$/.test(id)) return 'malformed';
  const doc = await inv.apiTokens.findOne({ _id: id });
  if (!doc) return 'unknown';
  return liveActor(doc, now);
}

export async function listApiTokens(inv: Inventory): Promise<ApiTokenView[]> {
  const docs = await inv.apiTokens.find({}).sort({ createdAt: 1 }).toArray();
  return docs.map(viewOf);
}

/** Revokes a token by id; it fails authentication from the next request on. */
export async function revokeApiToken(inv: Inventory, id: string): Promise<ApiTokenView> {
  if (!/^[0-9a-f]{16}$/.test(id)) throw new ValidationError('tokenId', 'must be 16 hex digits');
  const doc = await inv.apiTokens.findOne({ _id: id });
  if (!doc) throw new NotFoundError('token', id);
  const revokedAt = doc.revokedAt ?? new Date();
  await inv.apiTokens.updateOne({ _id: id }, { $set: { revokedAt } });
  return viewOf({ ...doc, revokedAt });
}

function viewOf(doc: ApiTokenDoc): ApiTokenView {
  const { secretSha256: _hash, ...view } = doc;
  return view;
}
