import { z } from 'zod';
import { idSchema } from './ids';

/**
 * Who may do what through the API. VMs (and later images, backups and policies) belong to a
 * project; a token holds a role per project. Hosts, networks and rollouts are fleet-wide and
 * only an admin grant on the fleet (`*`) changes them; any grant lets a caller read them, since
 * placing a VM needs to know what exists.
 */
export const roles = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof roles)[number];

/** The project every VM created without one belongs to. */
export const DEFAULT_PROJECT = 'default';

/** `*` is the fleet: a grant there applies to every project and to fleet-wide resources. */
export const FLEET = '*';

export const grantSchema = z.object({
  project: z.union([idSchema, z.literal(FLEET)]),
  role: z.enum(roles, { error: `must be one of ${roles.join(', ')}` }),
});
export type Grant = z.infer<typeof grantSchema>;

/** What a request wants to do: read, or change, something in a project or on the fleet. */
export type Action = 'read' | 'operate' | 'administer';

const rank: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const needed: Record<Action, number> = { read: 0, operate: 1, administer: 2 };

/** The identity behind a request, as audit events and workflow memos record it. */
export interface Actor {
  /** `token:<name>` for API callers, `local:<user>` for the CLI's direct mode. */
  name: string;
  tokenId?: string;
  grants: Grant[];
}

/** The role an actor holds on `project` (its fleet grant counts everywhere), if any. */
export function roleIn(actor: Pick<Actor, 'grants'>, project: string): Role | undefined {
  let best: Role | undefined;
  for (const g of actor.grants) {
    if (g.project !== project && g.project !== FLEET) continue;
    if (!best || rank[g.role] > rank[best]) best = g.role;
  }
  return best;
}

/**
 * The projects `actor` may read, as a set for a query's filter (`all` with a fleet grant): the
 * same rule as `allowed(actor, 'read', project)`.
 */
export function readableProjects(actor: Pick<Actor, 'grants'>): string[] | 'all' {
  if (actor.grants.some((g) => g.project === FLEET)) return 'all';
  return [...new Set(actor.grants.map((g) => g.project))];
}

/** Whether `actor` may do `action` in `project` (or on the fleet, for fleet-wide resources). */
export function allowed(actor: Pick<Actor, 'grants'>, action: Action, project: string = FLEET): boolean {
  if (project === FLEET && action === 'read') return actor.grants.length > 0;
  const role = roleIn(actor, project);
  return role !== undefined && rank[role] >= needed[action];
}
