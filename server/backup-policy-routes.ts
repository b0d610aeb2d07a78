import { z } from 'zod';
import { allowed, roleIn, FLEET, type Action, type Actor } from '../domain/access';
import {
  backupPolicyChangeSchema,
  backupPolicySchema,
  overlapPolicies,
  type BackupPolicyInput,
} from '../domain/backup';
import { NotFoundError, parseInput } from '../domain/errors';
import { backupPolicies, policyDetail, policySummary, type PolicyView } from '../client/backup-policies';
import { authorize } from './auth';
import { pathId, route, type ApiDeps, type ApiRoute, type RouteContext } from './route';

/**
 * Whether `actor` may do `action` on a policy of `project`: a project's policy is its project's
 * (read with any grant there, run by an operator, changed by an admin); a fleet policy picks VMs
 * across projects, so even reading it needs a fleet grant.
 */
function mayOnPolicy(actor: Actor, action: Action, project: string | undefined): boolean {
  return project
    ? allowed(actor, action, project)
    : roleIn(actor, FLEET) !== undefined && allowed(actor, action);
}

const projectOf = (v: PolicyView) => (v.policy.spec as BackupPolicyInput).project;

const noteBody = z.strictObject({ note: z.string().max(500).optional() });
const triggerBody = z.strictObject({ overlap: z.enum(overlapPolicies).optional() });

/**
 * Backup policies through the API: Temporal Schedules with their policy documents, as `virtflow
 * backup policy` manages them. A caller sees only the policies it may read; one it may not is
 * not found, as a VM of another project is not.
 */
export function backupPolicyRoutes(deps: ApiDeps): ApiRoute[] {
  const policies = (ctx: RouteContext<unknown>) => backupPolicies(ctx.client, deps.inv);
  /** The policy in the path, if `actor` may `action` it: otherwise 404 (unseen) or 403 (seen). */
  const policyFor = async (ctx: RouteContext<unknown>, action: Action): Promise<PolicyView> => {
    const name = pathId(ctx.params, 'name');
    const view = await policies(ctx).show(name);
    const project = projectOf(view);
    if (!mayOnPolicy(ctx.actor, 'read', project)) throw new NotFoundError('backup policy', name);
    if (!mayOnPolicy(ctx.actor, action, project)) authorize(ctx.actor, action, project); // throws the 403 naming what is missing
    return view;
  };
  const detail = (v: PolicyView) => policyDetail(deps.config, v);
  /** A control of one policy: `action` needed, then `act`, answered with the policy as it is now. */
  const control = <S extends z.ZodType>(
    verb: string,
    summary: string,
    body: S,
    action: Action,
    act: (p: ReturnType<typeof policies>, name: string, body: z.output<S>) => Promise<unknown>,
  ) =>
    route<z.input<S>>({
      method: 'POST',
      url: `/v1/backup-policies/:name/${verb}`,
      summary,
      body: body as z.ZodType<z.input<S>>,
      status: 200,
      async handle(ctx) {
        const view = await policyFor(ctx, action);
        await act(policies(ctx), view.policy._id, ctx.body as z.output<S>);
        return detail(await policies(ctx).show(view.policy._id));
      },
    });
  return [
    route({
      method: 'GET',
      url: '/v1/backup-policies',
      summary: 'The backup policies the caller may read, with their next run and failure streak',
      status: 200,
      async handle(ctx) {
        authorize(ctx.actor, 'read');
        const all = await policies(ctx).list();
        return all.filter((v) => mayOnPolicy(ctx.actor, 'read', projectOf(v))).map(policySummary);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/backup-policies/:name',
      summary: 'One backup policy: its spec, schedule and recent runs',
      status: 200,
      async handle(ctx) {
        return detail(await policyFor(ctx, 'read'));
      },
    }),
    route<BackupPolicyInput>({
      method: 'POST',
      url: '/v1/backup-policies',
      summary:
        "Create a backup policy and its schedule (idempotent): a project's by its admin, over its VMs only; " +
        'without a project, a fleet policy (fleet admin)',
      body: backupPolicySchema.strict(),
      status: 201,
      async handle(ctx) {
        const spec = parseInput(backupPolicySchema, ctx.body, '');
        authorize(ctx.actor, 'administer', spec.project);
        return detail(await policies(ctx).create(ctx.body));
      },
    }),
    route<z.input<typeof backupPolicyChangeSchema>>({
      method: 'PUT',
      url: '/v1/backup-policies/:name',
      summary: "Change a policy's schedule, retention or overlap; its schedule follows (admin)",
      body: backupPolicyChangeSchema,
      status: 200,
      async handle(ctx) {
        const view = await policyFor(ctx, 'administer');
        return detail(await policies(ctx).update(view.policy._id, ctx.body));
      },
    }),
    control('pause', "Pause a policy's schedule (operator)", noteBody, 'operate', (p, name, b) =>
      p.pause(name, b.note),
    ),
    control(
      'resume',
      "Resume a policy's schedule and clear its failure streak (operator)",
      noteBody,
      'operate',
      (p, name, b) => p.resume(name, b.note),
    ),
    control('trigger', 'Run a policy now (operator)', triggerBody, 'operate', (p, name, b) =>
      p.trigger(name, b.overlap),
    ),
    route({
      method: 'DELETE',
      url: '/v1/backup-policies/:name',
      summary: 'Delete a policy and its schedule; its backups stay (admin)',
      status: 200,
      async handle(ctx) {
        const view = await policyFor(ctx, 'administer');
        await policies(ctx).delete(view.policy._id);
        return { name: view.policy._id, deleted: true };
      },
    }),
  ];
}
