import { cannotServe } from '../../domain/network';
import type { Command } from 'commander';
import { NotFoundError, ValidationError } from '../../domain/errors';
import { hostOperations } from '../host-operations';
import { numberArg } from './args';
import { listHosts } from '../../inventory/hosts';
import { listVms } from '../../inventory/vms';
import { describeFence, fenceFor, loadFenceConfig } from '../../domain/fence';
import { liveness, lossReason } from '../../domain/liveness';
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
      const now = Date.now();
      emit(opts, hosts, (hs) =>
        printTable(
          hs.map((h) => ({
            id: h._id,
            state: h.state,
            liveness: liveness(h, now),
            maintenance:
              h.maintenanceState && h.maintenanceState !== 'none'
                ? h.maintenanceState
                : h.maintenance
                  ? 'yes'
                  : 'no',
            cluster: h.cluster,
            vcpus: h.allocatable.vcpus,
            'memory-mib': h.allocatable.memoryMiB,
            qemu: h.facts.qemuVersion,
            patch: h.patchLevel,
            heartbeat: h.agent.heartbeatAt,
            'needs-operator': h.needsOperator || '',
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
      const inv = await ctx.inventory();
      const doc = await inv.hosts.findOne({ _id: hostId });
      if (!doc) throw new NotFoundError('host', hostId);
      // The networks it can carry, by name: those its uplinks (or any host) serve.
      const networks = (await inv.networks.find({}).sort({ _id: 1 }).toArray())
        .filter((n) => !cannotServe(doc.facts.network, { network: n._id, uplink: n.spec.uplink }))
        .map((n) => n._id);
      emit(opts, { ...doc, networks }, (h) =>
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
          uplinks: h.facts.network ? h.facts.network.uplinks.join(', ') || '(none)' : 'serves no networks',
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
      const inv = await ctx.inventory();
      const doc = await inv.hosts.findOne({ _id: hostId });
      if (!doc) throw new NotFoundError('host', hostId);
      const vms = await listVms(inv, { host: hostId });
      const status = {
        id: doc._id,
        state: doc.state,
        liveness: liveness(doc, Date.now()),
        'lost-because': lossReason(doc, Date.now(), ctx.config.ha.downGraceMs) ?? '',
        'needs-operator': doc.needsOperator || '',
        maintenance: doc.maintenanceState,
        'agent-heartbeat': doc.agent.heartbeatAt,
        'facts-interval-s': doc.agent.factsIntervalMs / 1000,
        fence: fenceShown(ctx.config.fenceConfigPath, doc._id),
        'fenced-at': doc.fencedAt ?? '',
        vms: vms.map((v) => `${v._id} ${v.state}${v.ha?.enabled ? ` ha p${v.ha.priority}` : ''}`),
      };
      emit(opts, status, (s) => printFields(s));
    });

  const ops = async () => hostOperations(await ctx.client(), ctx.config);

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

/** The host's fence as this machine's controller configuration has it, secrets never shown. */
function fenceShown(file: string | undefined, hostId: string): string {
  if (!file) return 'unknown here: configured on the controller (VIRTFLOW_FENCE_CONFIG)';
  try {
    const f = fenceFor(loadFenceConfig(file), hostId);
    return f ? describeFence(f) : 'none: HA cannot fence it';
  } catch (err) {
    return (err as Error).message;
  }
}
