import type { Command } from 'commander';
import { auditOperations } from '../audit-operations';
import type { CliContext } from '../context';
import { emit, printTable, type OutputOptions } from '../output';
import { numberArg } from './args';

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
      const inv = await ctx.inventory();
      const docs = await inv.drift
        .find(o.all ? {} : { state: { $in: ['open', 'fixed'] } })
        .sort({ lastSeenAt: -1 })
        .toArray();
      emit(o, docs, (d) =>
        printTable(
          d.map((x) => ({
            id: x._id,
            kind: x.kind,
            host: x.hostId ?? '-',
            state: x.state,
            'last seen': x.lastSeenAt.toISOString(),
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
    .action(async (id: string) => console.log(await (await ops()).fix(id)));

  audit
    .command('run')
    .description('run one reconciliation pass over every host now')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const run = await (await ops()).run();
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
      await (await ops()).ensureSchedule(o.every);
      console.log(`reconciling every ${o.every} s (schedule "reconcile")`);
    });
}
