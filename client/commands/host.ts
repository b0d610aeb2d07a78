import type { Command } from 'commander';
import { NotFoundError } from '../../domain/errors';
import { listHosts } from '../../inventory/hosts';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';

export function registerHostCommands(program: Command, ctx: CliContext): void {
  const host = program.command('host').description('physical hypervisor hosts');

  host
    .command('list')
    .description('list hosts with their state and capacity')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const hosts = await listHosts(await ctx.inventory());
      emit(opts, hosts, (hs) =>
        printTable(
          hs.map((h) => ({
            id: h._id,
            state: h.state,
            maintenance: h.maintenance ? 'yes' : 'no',
            cluster: h.cluster,
            vcpus: h.allocatable.vcpus,
            'memory-mib': h.allocatable.memoryMiB,
            qemu: h.facts.qemuVersion,
            patch: h.patchLevel,
            heartbeat: h.agent.heartbeatAt,
          })),
          ['id', 'state', 'maintenance', 'cluster', 'vcpus', 'memory-mib', 'qemu', 'patch', 'heartbeat'],
        ),
      );
    });

  host
    .command('show <hostId>')
    .description('show one host: facts, capacity, agent')
    .option('--json', 'print JSON')
    .action(async (hostId: string, opts: OutputOptions) => {
      const doc = await (await ctx.inventory()).hosts.findOne({ _id: hostId });
      if (!doc) throw new NotFoundError('host', hostId);
      emit(opts, doc, (h) =>
        printFields({
          id: h._id,
          state: h.state,
          maintenance: h.maintenance,
          cluster: h.cluster,
          hostname: h.facts.hostname,
          'cpu-model': h.facts.cpuModel,
          vcpus: `${h.allocatable.vcpus} allocatable of ${h.facts.vcpus}`,
          memory: `${h.allocatable.memoryMiB} MiB allocatable of ${h.facts.memoryMiB} MiB`,
          qemu: h.facts.qemuVersion,
          kernel: h.facts.kernel,
          'patch-level': h.patchLevel,
          agent: `${h.agent.version} pid ${h.agent.pid} on ${h.agent.taskQueue}`,
          'agent-heartbeat': h.agent.heartbeatAt,
          'migration-ports': `${h.migrationPorts.first}-${h.migrationPorts.last}`,
          revision: h.revision,
        }),
      );
    });
}
