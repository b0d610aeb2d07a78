import type { Command } from 'commander';
import { ValidationError } from '../../domain/errors';
import { hostDetail, hostList, hostStatus } from '../../inventory/host-views';
import { apiHostOperations, hostPath, type HostControls } from '../api-host-operations';
import { hostOperations } from '../host-operations';
import { numberArg } from './args';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';

export function registerHostCommands(program: Command, ctx: CliContext): void {
  const host = program.command('host').description('physical hypervisor hosts');

  // Through the API when logged in; both ways read the same views (inventory/host-views.ts).
  const read = ctx.read.bind(ctx);

  host
    .command('list')
    .description('list hosts with their state and capacity')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const hosts = await read('/v1/hosts', hostList);
      emit(opts, hosts, (hs) =>
        printTable(
          hs.map((h) => ({
            id: h.hostId,
            state: h.state,
            liveness: h.liveness,
            maintenance: h.maintenance,
            cluster: h.cluster,
            vcpus: h.allocatable.vcpus,
            'memory-mib': h.allocatable.memoryMiB,
            qemu: h.qemu,
            patch: h.patchLevel,
            heartbeat: h.heartbeatAt,
            'needs-operator': h.needsOperator,
          })),
          [
            'id',
            'state',
            'liveness',
            'maintenance',
            'cluster',
            'vcpus',
            'memory-mib',
            'qemu',
            'patch',
            'heartbeat',
            'needs-operator',
          ],
        ),
      );
    });

  host
    .command('show <hostId>')
    .description('show one host: facts, capacity, agent')
    .option('--json', 'print JSON')
    .action(async (hostId: string, opts: OutputOptions) => {
      const detail = await read(hostPath(hostId), (inv) => hostDetail(inv, hostId));
      emit(opts, detail, (h) =>
        printFields({
          id: h.hostId,
          state: h.state,
          liveness: h.liveness,
          maintenance: h.maintenance,
          cluster: h.cluster,
          hostname: h.hostname,
          'cpu-model': h.cpuModel,
          vcpus: `${h.vcpus.allocatable} allocatable of ${h.vcpus.total}`,
          memory: `${h.memoryMiB.allocatable} MiB allocatable of ${h.memoryMiB.total} MiB`,
          qemu: h.qemu,
          kernel: h.kernel,
          'patch-level': h.patchLevel,
          agent: `${h.agent.version} pid ${h.agent.pid} on ${h.agent.taskQueue}`,
          'agent-heartbeat': h.agent.heartbeatAt,
          'migration-ports': `${h.migrationPorts.first}-${h.migrationPorts.last}`,
          uplinks: h.uplinks ? h.uplinks.join(', ') || '(none)' : 'serves no networks',
          networks: h.networks.join(', ') || '(none)',
          revision: h.revision,
        }),
      );
    });

  host
    .command('status <hostId>')
    .description('liveness, fencing and HA state of a host, with the VMs it holds')
    .option('--json', 'print JSON')
    .action(async (hostId: string, opts: OutputOptions) => {
      const status = await read(`${hostPath(hostId)}/status`, (inv) => hostStatus(inv, ctx.config, hostId));
      emit(opts, status, (s) => printFields(s));
    });

  const ops = async (): Promise<HostControls> =>
    ctx.api ? apiHostOperations(ctx.api) : hostOperations(await ctx.client(), ctx.config);

  host
    .command('fence <hostId>')
    .description('fence a lost host, then restart its HA VMs on other hosts (host/<hostId>)')
    .option('--force', 'fence although its agent still answers (its guests are killed)')
    .option('--json', 'print JSON')
    .action(async (hostId: string, o: OutputOptions & { force?: boolean }) => {
      const op = await (await ops()).fence({ hostId, force: o.force ?? false });
      if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
      const r = await op.result();
      emit(o, r, () =>
        console.log(
          r.outcome === 'recovered'
            ? `${hostId} was not fenced: ${r.reason}`
            : `${hostId} fenced (${r.fence}); restarted ${r.restarted.map((x) => `${x.vmId}→${x.to}`).join(', ') || 'nothing'}` +
                (r.failed.length
                  ? `; failed: ${r.failed.map((f) => `${f.vmId} (${f.reason})`).join(', ')}`
                  : ''),
        ),
      );
    });
  const enter = (c: Command) =>
    c
      .option('--max-parallel <n>', 'migrations out of the host at once', numberArg)
      .option('--max-inbound <n>', 'migrations into any one target at once', numberArg)
      .option('--retries <n>', 'other targets tried for a VM whose migration failed', numberArg)
      .option('--on-unmovable <policy>', 'block (wait for an operator) or stop', 'block')
      .option('--json', 'print JSON')
      .action(
        async (
          hostId: string,
          o: OutputOptions & {
            maxParallel?: number;
            maxInbound?: number;
            retries?: number;
            onUnmovable: 'block' | 'stop';
          },
        ) => {
          const op = await (
            await ops()
          ).enterMaintenance({
            hostId,
            maxParallel: o.maxParallel,
            maxInboundPerHost: o.maxInbound,
            retriesPerVm: o.retries,
            onUnmovable: o.onUnmovable,
          });
          if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
          const r = await op.result();
          emit(o, r, () =>
            console.log(
              `${hostId} is in maintenance: moved ${r.moved.map((m) => `${m.vmId}→${m.to}`).join(', ') || 'nothing'}` +
                `${r.stopped.length ? `; stopped ${r.stopped.join(', ')}` : ''}${r.notRunning.length ? `; not running: ${r.notRunning.join(', ')}` : ''}`,
            ),
          );
        },
      );
  const maintenance = host.command('maintenance').description('take a host out of service and back');
  enter(
    maintenance
      .command('enter <hostId>')
      .description('mark the host so placement skips it and live-migrate its VMs off'),
  );
  enter(
    host.command('evacuate <hostId>').description('live-migrate every VM off a host (it enters maintenance)'),
  );
  maintenance
    .command('exit <hostId>')
    .description('return a host to service')
    .option('--migrate-back', 'bring back the VMs its last evacuation moved off')
    .option('--json', 'print JSON')
    .action(async (hostId: string, o: OutputOptions & { migrateBack?: boolean }) => {
      const op = await (await ops()).exitMaintenance({ hostId, migrateBack: o.migrateBack ?? false });
      if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
      const r = await op.result();
      emit(o, r, () =>
        console.log(
          `${hostId} is back in service${r.returned.length ? `; returned ${r.returned.join(', ')}` : ''}`,
        ),
      );
    });
  maintenance
    .command('resolve <hostId>')
    .description('answer a host blocked entering maintenance: --retry its unmovable VMs, or --stop-them')
    .option('--retry', 'try the unmovable VMs again')
    .option('--stop-them', 'allow the unmovable VMs to be stopped')
    .action(async (hostId: string, o: { retry?: boolean; stopThem?: boolean }) => {
      if (!o.retry === !o.stopThem)
        throw new ValidationError('action', 'give exactly one of --retry or --stop-them');
      console.log(await (await ops()).resolveBlocked(hostId, o.retry ? 'retry' : 'stop-them'));
    });

  host
    .command('patch <hostId> <patch>')
    .description(
      'patch a host from the catalogue (patches/): maintenance, apply, restart, health check, back to service',
    )
    .option('--no-canary', 'skip the canary guest boot in the health check')
    .option('--json', 'print JSON')
    .action(async (hostId: string, patch: string, o: OutputOptions & { canary: boolean }) => {
      const op = await (await ops()).patch({ hostId, patch, canary: o.canary });
      if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
      const r = await op.result();
      emit(o, r, () =>
        console.log(
          r.outcome === 'skipped'
            ? `${hostId} skipped: ${r.reason}`
            : `${hostId} patched to ${r.version}; moved ${r.moved.map((m) => `${m.vmId}→${m.to}`).join(', ') || 'nothing'}; canary booted in ${r.canaryBootMs} ms`,
        ),
      );
    });
}
