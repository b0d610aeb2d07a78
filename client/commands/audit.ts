import type { Command } from 'commander';
import { listDrift } from '../../inventory/drift';
import type { reconcileFleet } from '../../workflows';
import { auditOperations } from '../audit-operations';
import type { CliContext } from '../context';
import { emit, printTable, type OutputOptions } from '../output';
import type { DriftDoc } from '../../inventory/schemas';
import { numberArg } from './args';

/** A drift finding as the API answers it (server/drift-routes.ts). */
type DriftView = Pick<DriftDoc, 'kind' | 'hostId' | 'state' | 'message' | 'fix'> & {
  id: string;
  lastSeenAt: string;
};

export function registerAuditCommands(program: Command, ctx: CliContext): void {
  const audit = program
    .command('audit')
    .description('drift between the inventory and what the hosts really run');
  const ops = async () => auditOperations(await ctx.client(), ctx.config);

  audit
    .command('drift')
    .description('drift the reconciler found (open and fixed; --all adds resolved)')
    .option('--all', 'include drift that has since gone away')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions & { all?: boolean }) => {
      // Through the API when logged in (its JSON names the id `id`); else from the inventory.
      const found = ctx.api
        ? await ctx.api.list<DriftView>(`/v1/drift${o.all ? '?all=true' : ''}`)
        : await listDrift(await ctx.inventory(), { all: o.all });
      emit(o, found, (d) =>
        printTable(
          d.map((x) => ({
            id: '_id' in x ? x._id : x.id,
            kind: x.kind,
            host: x.hostId ?? '-',
            state: x.state,
            'last seen': new Date(x.lastSeenAt).toISOString(),
            message: x.message,
            fix: x.fix,
          })),
          ['id', 'kind', 'host', 'state', 'last seen', 'message', 'fix'],
        ),
      );
    });

  audit
    .command('fix <id>')
    .description('apply the fix an open drift proposes (stop an orphan QEMU, delete an orphan disk, …)')
    .action(async (id: string) =>
      console.log(
        ctx.api
          ? await ctx.api.request('POST', `/v1/drift/${encodeURIComponent(id)}/fix`, {})
          : await (await ops()).fix(id),
      ),
    );

  audit
    .command('run')
    .description('run one reconciliation pass over every host now')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const run = ctx.api
        ? await ctx.api.start<Awaited<ReturnType<typeof reconcileFleet>>>('POST', '/v1/reconcile', {})
        : await (await ops()).run();
      if (!o.json) console.error(`started ${run.workflowId} — ${run.url}`);
      const result = await run.result();
      emit(o, result, (r) => {
        const rows = Object.entries(r.hosts).map(([host, s]) => ({
          scope: host,
          findings: 'found' in s ? s.found.length : `error: ${s.error}`,
        }));
        rows.push({
          scope: 'fleet',
          findings:
            'found' in r.fleet ? r.fleet.found.length + (r.fleet.more ?? 0) : `error: ${r.fleet.error}`,
        });
        printTable(rows, ['scope', 'findings']);
      });
    });

  audit
    .command('schedule')
    .description('reconcile every N seconds (a Temporal Schedule named "reconcile")')
    .requiredOption('--every <seconds>', 'interval', numberArg)
    .action(async (o: { every: number }) => {
      if (ctx.api) await ctx.api.request('PUT', '/v1/reconcile/schedule', { everySec: o.every });
      else await (await ops()).ensureSchedule(o.every);
      console.log(`reconciling every ${o.every} s (schedule "reconcile")`);
    });
}
