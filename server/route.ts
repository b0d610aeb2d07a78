import type { Client } from '@temporalio/client';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Actor } from '../domain/access';
import type { Config } from '../domain/config';
import { parseInput } from '../domain/errors';
import { idSchema } from '../domain/ids';
import type { Inventory } from '../inventory/db';

/** What every route handler works with: the inventory and a Temporal client acting as the caller. */
export interface ApiDeps {
  inv: Inventory;
  client: Client;
  config: Config;
}

export interface RouteContext<B> {
  actor: Actor;
  /** A client for queries and updates, acting as the caller. */
  client: Client;
  /** A client that stamps what it starts with the caller and the project it acts in (client/actor.ts). */
  clientIn(project: string): Client;
  params: Record<string, string>;
  body: B;
  req: FastifyRequest;
  reply: FastifyReply;
}

/**
 * One API route: the server registers it and the OpenAPI document describes it from the same
 * entry, so the two cannot disagree. Bodies are parsed with the client library's own request
 * schemas, made strict: an unknown field is refused, not silently dropped.
 */
export interface ApiRoute<B = unknown> {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Fastify's syntax: `/v1/vms/:vmId`. */
  url: string;
  summary: string;
  /** Fleet-wide read, or none for the public routes (the OpenAPI document). */
  auth?: false;
  body?: z.ZodType<B>;
  /** 202 for a started operation. */
  status: 200 | 201 | 202;
  /** It answers a run (with its `status`): also served as Server-Sent Events at `<url>/events`. */
  events?: true;
  handle(ctx: RouteContext<B>): Promise<unknown>;
}

export const route = <B>(r: ApiRoute<B>): ApiRoute => r as ApiRoute;

/** A path's id, checked as the CLI checks it (a DNS label), naming the parameter when refused. */
export function pathId(params: Record<string, string>, name: string): string {
  return parseInput(idSchema, params[name], name);
}

/** `?limit=` of a paged listing: up to 1000 items a page, 500 by default. */
export const pageLimit = z.coerce.number().int().min(1).max(1000).default(500);

/**
 * Names the next page of a listing in a `Link: rel="next"` header when this page is full: the
 * same query, continued after the last item's id.
 */
export function linkNextPage(
  reply: FastifyReply,
  path: string,
  query: Record<string, string | number | undefined>,
  limit: number,
  items: { _id: string }[],
): void {
  const last = items.at(-1);
  if (items.length < limit || !last) return;
  const next = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) next.set(k, String(v));
  next.set('after', last._id);
  next.set('limit', String(limit));
  void reply.header('link', `<${path}?${next}>; rel="next"`);
}
