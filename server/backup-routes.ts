import { z } from 'zod';
import { allowed, DEFAULT_PROJECT, readableProjects, type Action } from '../domain/access';
import { NotFoundError, parseInput } from '../domain/errors';
import { backupRequestSchema, restoreRequestSchema, retentionSchema } from '../domain/backup';
import { idSchema } from '../domain/ids';
import { backupOperations } from '../client/backup-operations';
import { listBackups } from '../inventory/backups';
import { authorize } from './auth';
import { accepted, acceptedAt, runOf } from './operations';
import { operableVm, projectOf } from './vm-access';
import { linkNextPage, pageLimit, route, type ApiDeps, type ApiRoute, type RouteContext } from './route';
import type { BackupDoc } from '../inventory/schemas';
import { progressQuery } from '../workflows/observability';

/** What an operator chooses of a backup; a policy's own fields are the schedule's, not the API's. */
const backupBody = backupRequestSchema.pick({ full: true, maxSpeedMiBps: true }).strict();

/** The new VM and its first boot; the backup is the path's. */
const restoreBody = restoreRequestSchema.omit({ backupId: true }).strict();
const backupIdSchema = restoreRequestSchema.shape.backupId;

const pruneBody = z.strictObject({ retention: retentionSchema, dryRun: z.boolean().default(false) });

/** A backup belongs to the project of the VM it was taken from (the default one, before projects). */
const projectOfBackup = (b: BackupDoc) => b.vm.project ?? DEFAULT_PROJECT;

/** A backup as a listing shows it. */
const backupView = (b: BackupDoc) => ({
  backupId: b._id,
  vmId: b.vmId,
  project: projectOfBackup(b),
  kind: b.kind,
  state: b.state,
  sizeBytes: b.sizeBytes,
  startedAt: b.startedAt,
  finishedAt: b.finishedAt,
  verifiedAt: b.verifiedAt,
  parentId: b.parentId,
  fullReason: b.fullReason,
});

const listQuery = z.strictObject({
  vm: idSchema.optional(),
  all: z.enum(['true', 'false']).optional(),
  after: z.string().min(1).max(200).optional(),
  limit: pageLimit,
});

/**
 * Backups belong to the project of the VM they were taken from: a caller sees those of the
 * projects it holds a grant in, backs up the VMs it may operate, and restores a backup into its
 * project as an operator there. Policies have their own routes (server/backup-policy-routes.ts).
 */
export function backupRoutes(deps: ApiDeps): ApiRoute[] {
  /** The backup in the path, if the caller may `action` in its project: else 404 (unseen) or 403. */
  async function backupFor(ctx: RouteContext<unknown>, action: Action): Promise<BackupDoc> {
    const backupId = parseInput(backupIdSchema, ctx.params.backupId, 'backupId');
    const backup = await deps.inv.backups.findOne({ _id: backupId });
    if (!backup || !allowed(ctx.actor, 'read', projectOfBackup(backup)))
      throw new NotFoundError('backup', backupId);
    authorize(ctx.actor, action, projectOfBackup(backup));
    return backup;
  }
  return [
    route({
      method: 'GET',
      url: '/v1/backups',
      summary:
        'Backups of the VMs of every project the caller holds a grant in, newest first (?vm=, ?all=true), ' +
        'a page at a time (?limit= up to 1000, default 500; ?after=<last id>); a `Link: rel="next"` header names the next page',
      status: 200,
      async handle({ actor, req, reply }) {
        authorize(actor, 'read');
        const q = parseInput(listQuery, req.query, 'query');
        const docs = await listBackups(deps.inv, {
          vmId: q.vm,
          all: q.all === 'true',
          projects: readableProjects(actor),
          after: q.after,
          limit: q.limit,
        });
        linkNextPage(reply, '/v1/backups', { vm: q.vm, all: q.all }, q.limit, docs);
        return docs.map(backupView);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/backups/:backupId',
      summary: 'One backup: its chain, file, checksum, consistency and how it went (viewer)',
      status: 200,
      async handle(ctx) {
        const b = await backupFor(ctx, 'read');
        return {
          ...backupView(b),
          chainId: b.chainId,
          bitmap: b.bitmap,
          path: b.path,
          sha256: b.sha256,
          consistency: b.consistency,
          durationMs: b.durationMs,
          throughputMiBps: b.throughputMiBps,
          failure: b.failure,
        };
      },
    }),
    route<Record<string, never>>({
      method: 'POST',
      url: '/v1/backups/:backupId/verify',
      summary:
        'Check a backup and its chain (qemu-img check, checksums, backing files) (operator); ' +
        'followed at /v1/backups/<id>/verification',
      body: z.strictObject({}),
      status: 202,
      async handle(ctx) {
        const b = await backupFor(ctx, 'operate');
        const op = await backupOperations(ctx.clientIn(projectOfBackup(b)), deps.config).verify(b._id);
        return acceptedAt(`/v1/backups/${encodeURIComponent(b._id)}/verification`, op);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/backups/:backupId/verification',
      summary: "The backup's latest verification: its status, and its result or why it failed (viewer)",
      status: 200,
      events: true,
      async handle(ctx) {
        const b = await backupFor(ctx, 'read');
        const run = await runOf(ctx.client, deps.config, `backup/${b._id}/verify`, progressQuery);
        if (!run) throw new NotFoundError('verification of backup', b._id);
        return run;
      },
    }),
    route<z.input<typeof pruneBody>>({
      method: 'POST',
      url: '/v1/vms/:vmId/backups/prune',
      summary: "Delete a VM's backups its retention does not keep (`retention`, `dryRun`) (operator)",
      body: pruneBody,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        const { retention, dryRun } = ctx.body as z.output<typeof pruneBody>;
        const ops = backupOperations(ctx.clientIn(projectOf(vm)), deps.config);
        return accepted(vm._id, await ops.prune(vm._id, retention, dryRun));
      },
    }),
    route({
      method: 'POST',
      url: '/v1/vms/:vmId/backup',
      summary: "Back a VM up now: `full`, `maxSpeedMiBps` (operator in the VM's project)",
      body: backupBody,
      status: 202,
      async handle(ctx) {
        const vm = await operableVm(deps, ctx.actor, ctx.params);
        return accepted(
          vm._id,
          await backupOperations(ctx.clientIn(projectOf(vm)), deps.config).run({ ...ctx.body, vmId: vm._id }),
        );
      },
    }),
    route<z.input<typeof restoreBody>>({
      method: 'POST',
      url: '/v1/backups/:backupId/restore',
      summary:
        "Restore a backup (with its chain) as a new VM in the backed-up VM's project and boot it (operator there); " +
        '202 with the operation',
      body: restoreBody,
      status: 202,
      async handle(ctx) {
        const backup = await backupFor(ctx, 'operate');
        const backupId = backup._id;
        const project = projectOfBackup(backup);
        const body = ctx.body as z.output<typeof restoreBody>;
        const op = await backupOperations(ctx.clientIn(project), deps.config).restore({ ...body, backupId });
        return accepted(body.vmId, op);
      },
    }),
  ];
}
