import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type {
  BackupPolicyChange,
  BackupPolicyInput,
  RestoreRequest,
  RetentionPolicy,
} from '../../domain/backup';
import { NotFoundError } from '../../domain/errors';
import type { BackupDoc } from '../../inventory/schemas';
import type { BackupResult } from '../../workflows/backup-vm';
import type { pruneVmBackups, restoreVm, verifyBackup } from '../../workflows';
import { listBackups } from '../../inventory/backups';
import { backupOperations } from '../backup-operations';
import type { PolicyDetail } from '../backup-policies';
import { apiPolicyControls, directPolicyControls, type PolicyControls } from '../policy-controls';
import type { ApiOperation } from '../api-client';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';
import { labelArg, numberArg, sshKeyFileArg, userDataFileArg } from './args';

const mib = (bytes?: number) => (bytes === undefined ? undefined : `${(bytes / 1024 / 1024).toFixed(1)} MiB`);

function retentionFrom(o: Record<string, number | undefined>): RetentionPolicy {
  const r: RetentionPolicy = {};
  for (const key of [
    'keepLast',
    'keepHourly',
    'keepDaily',
    'keepWeekly',
    'keepMonthly',
    'keepYearly',
  ] as const) {
    if (o[key] !== undefined) r[key] = o[key];
  }
  return r;
}

function withRetentionOptions(c: Command): Command {
  return c
    .option('--keep-last <n>', 'keep the newest N backups', numberArg)
    .option('--keep-hourly <n>', 'keep the newest backup of each of the last N hours', numberArg)
    .option('--keep-daily <n>', 'keep the newest backup of each of the last N days', numberArg)
    .option('--keep-weekly <n>', 'keep the newest backup of each of the last N weeks', numberArg)
    .option('--keep-monthly <n>', 'keep the newest backup of each of the last N months', numberArg)
    .option('--keep-yearly <n>', 'keep the newest backup of each of the last N years', numberArg);
}

/** The fields of a backup a row shows: a backup document's, or the API's view of one. */
type BackupRowFields = Pick<
  BackupDoc,
  'vmId' | 'kind' | 'state' | 'sizeBytes' | 'parentId' | 'fullReason'
> & {
  finishedAt?: Date | string;
  verifiedAt?: Date | string;
};

/** A backup as `GET /v1/backups` answers it (server/backup-routes.ts). */
type BackupView = BackupRowFields & { backupId: string; project: string };

const backupPath = (id: string) => `/v1/backups/${encodeURIComponent(id)}`;

function backupRow(id: string, b: BackupRowFields) {
  return {
    id,
    vm: b.vmId,
    kind: b.kind,
    state: b.state,
    size: mib(b.sizeBytes),
    finished: b.finishedAt,
    verified: b.verifiedAt,
    parent: b.parentId,
    'full-reason': b.fullReason,
  };
}

/** A progress bar fed by the copy activity's heartbeats (bytes copied of the disk's size). */
async function watchBackup(handle: WorkflowHandle, done: Promise<unknown>): Promise<void> {
  const bar = new cliProgress.SingleBar(
    { format: 'backup |{bar}| {percentage}% · {copied}/{total} MiB', hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0, { copied: 0, total: 0 });
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    const d = await handle.describe().catch(() => undefined);
    const payload = d?.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0];
    if (payload) {
      const beat = defaultPayloadConverter.fromPayload<{ copiedBytes: number; totalBytes: number }>(payload);
      if (beat.totalBytes > 0) {
        bar.update(Math.floor((100 * beat.copiedBytes) / beat.totalBytes), {
          copied: (beat.copiedBytes / 1024 / 1024).toFixed(0),
          total: (beat.totalBytes / 1024 / 1024).toFixed(0),
        });
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  bar.update(100);
  bar.stop();
}

export function registerBackupCommands(program: Command, ctx: CliContext): void {
  const backup = program.command('backup').description('backups, restores and backup policies');
  const ops = async () => backupOperations(await ctx.client(), ctx.config);

  backup
    .command('run <vmId>')
    .description('back a VM up now (incremental when its chain is intact)')
    .option('--full', 'start a new chain')
    .option('--max-speed <MiB/s>', 'cap the copy rate', numberArg)
    .option('--watch', 'show progress until it ends')
    .option('--json', 'print JSON')
    .action(
      async (vmId: string, o: OutputOptions & { full?: boolean; maxSpeed?: number; watch?: boolean }) => {
        const request = { full: o.full ?? false, maxSpeedMiBps: o.maxSpeed ?? 0 };
        // Through the API when logged in; the progress bar reads the run's heartbeats, which
        // only the direct mode sees.
        const op: ApiOperation<BackupResult> & { handle?: WorkflowHandle } = ctx.api
          ? await ctx.api.start<BackupResult>('POST', `/v1/vms/${encodeURIComponent(vmId)}/backup`, request)
          : await (await ops()).run({ vmId, ...request });
        if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
        const result = op.result();
        if (o.watch && !o.json && op.handle) await watchBackup(op.handle, result);
        const r = await result;
        emit(o, { ...r, workflowId: op.workflowId, url: op.url }, () =>
          console.log(
            `${r.kind} backup ${r.backupId} of ${r.vmId}: ${mib(r.sizeBytes)} in ${(r.durationMs / 1000).toFixed(1)} s${r.fullReason ? ` (full: ${r.fullReason})` : ''}`,
          ),
        );
      },
    );

  backup
    .command('list')
    .description('list backups')
    .option('--vm <vmId>', 'only this VM')
    .option('--all', 'include failed and pruned backups')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions & { vm?: string; all?: boolean }) => {
      if (ctx.api) {
        // The API's view: the backups of the token's projects, newest first.
        const query = new URLSearchParams({
          ...(o.vm ? { vm: o.vm } : {}),
          ...(o.all ? { all: 'true' } : {}),
        });
        const views = await ctx.api.list<BackupView>(`/v1/backups?${query}`);
        emit(o, views, (vs) =>
          printTable(
            vs.map((b) => backupRow(b.backupId, b)),
            ['id', 'vm', 'kind', 'state', 'size', 'finished', 'verified', 'parent'],
          ),
        );
        return;
      }
      const docs = await listBackups(await ctx.inventory(), { vmId: o.vm, all: o.all });
      emit(o, docs, (ds) =>
        printTable(
          ds.map((b) => backupRow(b._id, b)),
          ['id', 'vm', 'kind', 'state', 'size', 'finished', 'verified', 'parent'],
        ),
      );
    });

  backup
    .command('show <backupId>')
    .description('show one backup and its lineage')
    .option('--json', 'print JSON')
    .action(async (id: string, o: OutputOptions) => {
      const doc = ctx.api
        ? await ctx.api.request<
            BackupView & Pick<BackupDoc, 'chainId' | 'bitmap' | 'path'> & Partial<BackupDoc>
          >('GET', backupPath(id))
        : await (await ctx.inventory()).backups.findOne({ _id: id });
      if (!doc) throw new NotFoundError('backup', id);
      emit(o, doc, (b) =>
        printFields({
          ...backupRow(id, b),
          chain: b.chainId,
          bitmap: b.bitmap,
          path: b.path,
          sha256: b.sha256,
          consistency: b.consistency,
          duration: b.durationMs === undefined ? undefined : `${(b.durationMs / 1000).toFixed(1)} s`,
          throughput: b.throughputMiBps === undefined ? undefined : `${b.throughputMiBps.toFixed(0)} MiB/s`,
          failure: b.failure,
        }),
      );
    });

  backup
    .command('verify <backupId>')
    .description('check a backup and its chain: qemu-img check, checksums, backing files')
    .option('--json', 'print JSON')
    .action(async (id: string, o: OutputOptions) => {
      const op = ctx.api
        ? await ctx.api.start<Awaited<ReturnType<typeof verifyBackup>>>(
            'POST',
            `${backupPath(id)}/verify`,
            {},
          )
        : await (await ops()).verify(id);
      if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
      const r = await op.result();
      emit(o, r, () => console.log(`verified ${r.verified.join(', ')}`));
    });

  withRetentionOptions(
    backup
      .command('prune <vmId>')
      .description("apply a retention policy to a VM's backups")
      .option('--dry-run', 'only show what would be pruned')
      .option('--json', 'print JSON'),
  ).action(
    async (vmId: string, o: OutputOptions & { dryRun?: boolean } & Record<string, number | undefined>) => {
      const [retention, dryRun] = [retentionFrom(o), o.dryRun ?? false];
      const op = ctx.api
        ? await ctx.api.start<Awaited<ReturnType<typeof pruneVmBackups>>>(
            'POST',
            `/v1/vms/${encodeURIComponent(vmId)}/backups/prune`,
            { retention, dryRun },
          )
        : await (await ops()).prune(vmId, retention, dryRun);
      const r = await op.result();
      emit(o, r, () =>
        console.log(`${r.dryRun ? 'would prune' : 'pruned'}: ${r.pruned.join(', ') || 'nothing'}`),
      );
    },
  );

  backup
    .command('restore <backupId>')
    .description('restore a backup (with its chain) as a new VM and boot it')
    .requiredOption('--as <vmId>', 'the new VM id')
    .option('--host <hostId>', 'run on this host instead of letting placement choose')
    .option(
      '--ssh-key <file>',
      "OpenSSH public key file (repeatable; default: the backed-up VM's keys)",
      sshKeyFileArg,
    )
    .option('--user-data <file>', "cloud-init user-data (default: the backed-up VM's)", userDataFileArg)
    .option(
      '--nics <how>',
      "NICs on the backed-up VM's networks: fresh (new MACs and addresses), same-addresses, or none",
      'fresh',
    )
    .option('--json', 'print JSON')
    .action(
      async (
        backupId: string,
        o: OutputOptions & {
          as: string;
          host?: string;
          sshKey?: string[];
          userData?: string;
          nics: 'fresh' | 'same-addresses' | 'none';
        },
      ) => {
        const request: RestoreRequest = {
          backupId,
          vmId: o.as,
          host: o.host,
          sshKeys: o.sshKey,
          userData: o.userData,
          nics: o.nics,
        };
        // Through the API when logged in: into the backed-up VM's project, as an operator there.
        const op = ctx.api
          ? await ctx.api.start<Awaited<ReturnType<typeof restoreVm>>>(
              'POST',
              `${backupPath(backupId)}/restore`,
              { ...request, backupId: undefined },
            )
          : await (await ops()).restore(request);
        if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
        const r = await op.result();
        emit(o, r, () =>
          console.log(
            `restored ${backupId} as vm ${r.vmId} on ${r.host}; disk identical to the backup, guest booted`,
          ),
        );
      },
    );

  const policy = backup.command('policy').description('scheduled backups (Temporal Schedules)');
  // Through the API when logged in; both ways answer a policy in the same shape.
  const pol = async (): Promise<PolicyControls> =>
    ctx.api
      ? apiPolicyControls(ctx.api)
      : directPolicyControls(await ctx.client(), await ctx.inventory(), ctx.config);
  const show = (o: OutputOptions) => (d: PolicyDetail) =>
    emit(o, d, ({ spec, scheduleId, temporalUi, recentRuns, skippedOverlapping, ...row }) =>
      printFields({
        ...row,
        spec: JSON.stringify(spec),
        'schedule-id': scheduleId,
        'temporal-ui': temporalUi,
        'recent-runs': recentRuns,
        'skipped-overlapping': skippedOverlapping,
      }),
    );

  withRetentionOptions(
    policy
      .command('create <name>')
      .description('create a backup policy and its schedule (idempotent)')
      .option('--project <name>', "the project it belongs to: it backs up only that project's VMs")
      .option('--vm <vmId...>', 'VMs to back up')
      .option('--vm-label <key=value>', 'back up every VM with this label (repeatable)', labelArg)
      .option('--cron <expr>', 'cron expression: minute hour day-of-month month day-of-week')
      .option('--every <seconds>', 'run every N seconds', numberArg)
      .option('--timezone <tz>', 'IANA time zone of the schedule', 'UTC')
      .option(
        '--overlap <policy>',
        'skip, buffer-one, buffer-all, cancel-other, terminate-other, allow-all',
        'skip',
      )
      .option('--catchup-window <seconds>', 'how far back missed runs are caught up', numberArg)
      .option('--pause-after-failures <n>', 'pause after N consecutive failed runs', numberArg)
      .option('--full-every <n>', 'start a new chain after N backups', numberArg)
      .option('--max-parallel <n>', 'VMs backed up at once', numberArg)
      .option('--json', 'print JSON'),
  ).action(async (name: string, o: OutputOptions & Record<string, unknown>) => {
    const view = await (
      await pol()
    ).create({
      name,
      project: o.project as string | undefined,
      vmIds: o.vm as string[] | undefined,
      vmLabels: o.vmLabel as Record<string, string> | undefined,
      schedule: {
        cron: o.cron as string | undefined,
        everySec: o.every as number | undefined,
        timezone: o.timezone as string,
      },
      retention: Object.keys(retentionFrom(o as Record<string, number>)).length
        ? retentionFrom(o as Record<string, number>)
        : undefined,
      overlap: o.overlap as BackupPolicyInput['overlap'],
      catchupWindowSec: o.catchupWindow as number | undefined,
      pauseAfterFailures: o.pauseAfterFailures as number | undefined,
      fullEvery: o.fullEvery as number | undefined,
      maxParallel: o.maxParallel as number | undefined,
    });
    show(o)(view);
  });
  policy
    .command('list')
    .description('list backup policies with their schedules')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const rows = await (await pol()).list();
      emit(o, rows, (rs) =>
        printTable(rs, [
          'name',
          'project',
          'vms',
          'schedule',
          'paused',
          'next',
          'last-run',
          'last-outcome',
          'failures',
        ]),
      );
    });
  policy
    .command('show <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions) => show(o)(await (await pol()).show(name)));
  withRetentionOptions(
    policy
      .command('update <name>')
      .description('change a policy; its schedule is updated through the Schedule API')
      .option('--cron <expr>', 'cron expression')
      .option('--every <seconds>', 'run every N seconds', numberArg)
      .option('--overlap <policy>', 'overlap policy')
      .option('--json', 'print JSON'),
  ).action(async (name: string, o: OutputOptions & Record<string, unknown>) => {
    const patch: BackupPolicyChange = {};
    if (o.cron || o.every)
      patch.schedule = { cron: o.cron as string | undefined, everySec: o.every as number | undefined };
    if (o.overlap) patch.overlap = o.overlap as BackupPolicyInput['overlap'];
    const retention = retentionFrom(o as Record<string, number>);
    if (Object.keys(retention).length) patch.retention = retention;
    show(o)(await (await pol()).update(name, patch));
  });
  policy
    .command('pause <name>')
    .option('--note <text>', 'why')
    .action(async (name: string, o: { note?: string }) => {
      await (await pol()).pause(name, o.note);
      console.log(`policy ${name} paused`);
    });
  policy
    .command('resume <name>')
    .option('--note <text>', 'why')
    .action(async (name: string, o: { note?: string }) => {
      await (await pol()).resume(name, o.note);
      console.log(`policy ${name} resumed`);
    });
  policy
    .command('trigger <name>')
    .description('run the policy now (with its own overlap policy unless --overlap)')
    .option('--overlap <policy>', 'overlap policy for this trigger')
    .action(async (name: string, o: { overlap?: BackupPolicyInput['overlap'] }) => {
      await (await pol()).trigger(name, o.overlap);
      console.log(`policy ${name} triggered`);
    });
  policy.command('delete <name>').action(async (name: string) => {
    await (await pol()).delete(name);
    console.log(`policy ${name} deleted with its schedule`);
  });
}
