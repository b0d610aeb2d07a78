import type { Command } from 'commander';
import type { RolloutProgress } from '../../workflows/rollout-control';
import type { CliContext } from '../context';
import { emit, printTable, type OutputOptions } from '../output';
import { apiRolloutOperations, type RolloutControls } from '../api-rollout-operations';
import { rolloutOperations } from '../rollout-operations';
import { forecastRollout, type RolloutForecast } from '../rollout-forecast';
import { numberArg } from './args';

function printProgress(p: RolloutProgress): void {
  console.log(`${p.phase}: ${p.message}${p.waitingFor ? ` — waiting for ${p.waitingFor}` : ''}`);
  printTable(
    p.hosts.map((h) => ({ host: h.hostId, state: h.state, attempts: h.attempts, reason: h.reason })),
    ['host', 'state', 'attempts', 'reason'],
  );
}

function printForecast(f: RolloutForecast): void {
  const h = Math.floor(f.makespanSec / 3600);
  const m = Math.round((f.makespanSec % 3600) / 60);
  console.log(
    `forecast: ${f.progress.phase}, makespan ${f.makespanSec} s (${h} h ${m} min), ` +
      `peak unavailability ${f.peakUnavailable} host(s) (limit ${f.maxUnavailable})`,
  );
  printTable(
    f.hosts.map((x) => ({
      host: x.hostId,
      state: x.state,
      'out of service (s)': x.outOfServiceSec,
      reason: x.reason,
    })),
    ['host', 'state', 'out of service (s)', 'reason'],
  );
}

export function registerRolloutCommands(program: Command, ctx: CliContext): void {
  const rollout = program.command('rollout').description('rolling patches across hosts');
  // Through the API when logged in, a dry run's forecast included.
  const ops = async (): Promise<RolloutControls> =>
    ctx.api ? apiRolloutOperations(ctx.api) : rolloutOperations(await ctx.client(), ctx.config);

  rollout
    .command('start <name>')
    .description('patch hosts a batch at a time, canaries first')
    .requiredOption('--patch <name>', 'patch from the catalogue (patches/)')
    .option('--hosts <ids...>', 'hosts, in order')
    .option('--cluster <name>', 'every host of a cluster')
    .option(
      '--order <order>',
      'fastest (canaries least-loaded, then most-loaded first), least-loaded or given',
      'fastest',
    )
    .option('--canary <n>', 'hosts patched first, one at a time', numberArg)
    .option('--max-unavailable <n|%>', 'hosts out of service at once (count or percentage)')
    .option('--retries <n>', 'retries per host', numberArg)
    .option('--failure-budget <n>', 'failed hosts tolerated before the rollout halts', numberArg)
    .option('--dry-run', 'forecast on a simulated twin of the hosts: makespan and peak unavailability')
    .option('--watch', 'show every host until the rollout ends')
    .option('--wait', 'wait for the rollout to end (it may halt for an operator)')
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions & Record<string, unknown>) => {
      const maxUnavailable = o.maxUnavailable as string | undefined;
      const request = {
        name,
        patch: o.patch as string,
        hosts: o.hosts as string[] | undefined,
        cluster: o.cluster as string | undefined,
        order: o.order as 'given' | 'least-loaded' | 'fastest',
        canaryHosts: o.canary as number | undefined,
        maxUnavailable:
          maxUnavailable === undefined
            ? undefined
            : /%$/.test(maxUnavailable)
              ? maxUnavailable
              : numberArg(maxUnavailable),
        retriesPerHost: o.retries as number | undefined,
        failureBudget: o.failureBudget as number | undefined,
      };
      if (o.dryRun) {
        if (!o.json) console.error('forecasting on a simulated twin of the hosts…');
        let last = '';
        // Through the API the forecast runs on the server, and answers when it ends.
        const forecast = ctx.api
          ? await ctx.api.request<RolloutForecast>('POST', '/v1/rollouts/forecast', request)
          : await forecastRollout(await ctx.client(), ctx.config, await ctx.inventory(), request, (p) => {
              const line = `${p.phase}: ${p.message}`;
              if (!o.json && line !== last) console.error(`  ${(last = line)}`);
            });
        emit(o, forecast, printForecast);
        return;
      }
      const op = await (await ops()).start(request);
      if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
      if (o.watch && !o.json) {
        let done = false;
        const result = op.result().finally(() => (done = true));
        while (!done) {
          const p = await (await ops()).status(name).catch(() => undefined);
          if (p) {
            console.clear();
            printProgress(p);
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
        printProgress(await result);
        return;
      }
      if (o.wait) emit(o, await op.result(), printProgress);
      else
        emit(o, { workflowId: op.workflowId, url: op.url }, () =>
          console.log(`follow it with: virtflow rollout status ${name}`),
        );
    });
  rollout
    .command('status <name>')
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions) =>
      emit(o, await (await ops()).status(name), printProgress),
    );
  for (const [cmd, what] of [
    ['pause', 'pause after the current step'],
    ['resume', 'resume a paused or halted rollout'],
    ['abort', 'start no new host; hosts in progress finish'],
  ] as const) {
    rollout
      .command(`${cmd} <name>`)
      .description(what)
      .action(async (name: string) => console.log(await (await ops())[cmd](name)));
  }
  rollout
    .command('skip <name> <hostId>')
    .description('skip a pending or failed host')
    .action(async (name: string, hostId: string) => console.log(await (await ops()).skip(name, hostId)));
  rollout
    .command('retry <name> <hostId>')
    .description('try a failed host again')
    .action(async (name: string, hostId: string) => console.log(await (await ops()).retry(name, hostId)));
}
