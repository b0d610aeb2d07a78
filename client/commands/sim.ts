import type { Command } from 'commander';
import { logger } from '../../domain/logger';
import { SIM_TASK_QUEUE } from '../../domain/names';
import { populateSimFleet, removeSimCluster } from '../../inventory/sim-fleet';
import { startSimAgent } from '../../worker/sim-agent';
import type { CliContext } from '../context';
import { emit, type OutputOptions } from '../output';
import { numberArg } from './args';

/** Serves the simulated fleet in the foreground until Ctrl-C. */
async function serve(ctx: CliContext): Promise<void> {
  const agent = await startSimAgent(ctx.config);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => agent.worker.shutdown());
  logger.info(
    { taskQueue: SIM_TASK_QUEUE },
    'simulated agent serving; Ctrl-C stops it (the fleet stays recorded)',
  );
  await agent.running;
}

export function registerSimCommands(program: Command, ctx: CliContext): void {
  const sim = program.command('sim').description('a simulated fleet, for rollouts and forecasts at scale');

  sim
    .command('up')
    .description('record a simulated fleet in the inventory, then serve it until Ctrl-C')
    .requiredOption('--hosts <n>', 'simulated hosts', numberArg)
    .requiredOption('--vms <n>', 'running VMs spread over them', numberArg)
    .option('--cluster <name>', 'cluster of the simulated hosts', 'sim')
    .option('--seed <n>', 'the same seed gives the same VM sizes and dirty rates', numberArg)
    .option('--host-memory <MiB>', 'memory of each simulated host', numberArg)
    .option('--no-serve', 'only record the fleet (another `virtflow sim serve` serves it)')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions & Record<string, unknown>) => {
      const fleet = await populateSimFleet(await ctx.inventory(), {
        hosts: o.hosts,
        vms: o.vms,
        cluster: o.cluster,
        seed: o.seed,
        hostMemoryMiB: o.hostMemory,
      });
      emit(o, { cluster: fleet.cluster, hosts: fleet.hosts.length, vms: fleet.vms }, () =>
        console.log(
          `simulated cluster ${fleet.cluster}: ${fleet.hosts.length} hosts (${fleet.hosts[0]} …), ${fleet.vms} running VMs`,
        ),
      );
      if (o.serve) await serve(ctx);
    });

  sim
    .command('serve')
    .description('serve the simulated hosts recorded in the inventory until Ctrl-C')
    .action(() => serve(ctx));

  sim
    .command('down')
    .description('remove a simulated cluster, its VMs and their reservations from the inventory')
    .option('--cluster <name>', 'cluster of the simulated hosts', 'sim')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions & { cluster: string }) => {
      const removed = await removeSimCluster(await ctx.inventory(), o.cluster);
      emit(o, removed, () =>
        console.log(`removed ${removed.hosts} simulated host(s) and ${removed.vms} VM(s)`),
      );
    });
}
