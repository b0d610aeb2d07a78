import fs from 'node:fs';
import type { Command } from 'commander';
import { labelArg, listArg, numberArg, sizeArg, sizesArg, sshKeyFileArg, userDataFileArg } from './args';
import { registerMigrationCommands } from './migration';
import { formatBytes } from '../../domain/bytes';
import { InvalidStateError, NotFoundError, ValidationError } from '../../domain/errors';
import type { GuestInfo } from '../../domain/guest';
import { HA_PRIORITY_MAX } from '../../domain/ha';
import { nicViews, type NicConfig, type NicRequest } from '../../domain/network';
import { listVms } from '../../inventory/vms';
import type { VmDoc } from '../../inventory/schemas';
import { consoleTail } from '../../hypervisor/console-log';
import { localQemuHost } from '../../hypervisor/local-qemu-host';
import { attachConsole } from '../console';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';
import type { VmView } from '../../server/vm-view';
import type { ApiOperation } from '../api-client';
import { apiVmOperations, type VmLifecycle } from '../api-vm-operations';
import { vmOperations } from '../vm-operations';

/** Prints the run's link, then waits for the outcome unless --no-wait. */
async function follow<R>(
  op: ApiOperation<R>,
  opts: OutputOptions & { wait: boolean },
  human: (r: R) => void,
) {
  if (!opts.json) console.error(`started ${op.workflowId} — ${op.url}`);
  if (!opts.wait) {
    emit(opts, { workflowId: op.workflowId, runId: op.runId, url: op.url }, () => undefined);
    return;
  }
  const result = await op.result();
  emit(opts, { ...result, workflowId: op.workflowId, runId: op.runId, url: op.url }, () => human(result));
}

function vmRow(v: VmDoc) {
  return {
    id: v._id,
    state: v.state,
    host: v.host,
    'memory-mib': v.memoryMiB,
    vcpus: v.vcpus,
    image: v.image,
    ha: v.ha?.enabled ? `p${v.ha.priority}` : 'off',
    updated: v.updatedAt,
  };
}

/** A VM as the API shows it, as a table row. */
function viewRow(v: VmView) {
  return {
    id: v.vmId,
    project: v.project,
    state: v.state,
    host: v.host,
    'memory-mib': v.memoryMiB,
    vcpus: v.vcpus,
    image: v.image,
    ha: v.ha.enabled ? `p${v.ha.priority}` : 'off',
  };
}

/** `--nic a --nic b --ip a=10.20.0.15` as NIC requests; an --ip for a network without --nic is refused. */
function nicRequests(networks: string[], ips: Record<string, string>): NicRequest[] | undefined {
  const stray = Object.keys(ips).find((n) => !networks.includes(n));
  if (stray) throw new ValidationError('ip', `--ip ${stray}=… names a network with no --nic ${stray}`);
  return networks.length ? networks.map((network) => ({ network, ip: ips[network] })) : undefined;
}

/** Each NIC: network, MAC, configured address, and what the guest reports on it. */
function nicLines(nics: NicConfig[], guest: GuestInfo | { error: string } | undefined): string[] {
  const reported = guest && !('error' in guest) ? guest.addresses : undefined;
  return nicViews(nics, reported).map(
    (v, i) =>
      `eth${i} ${v.network} ${v.mac} ${v.configured}` +
      (v.reported === undefined ? '' : v.drift ? ` DRIFT: ${v.drift}` : ' (the guest agrees)'),
  );
}

function guestFields(
  guest: GuestInfo | { error: string } | undefined,
): Record<string, string | string[] | undefined> {
  if (!guest) return {};
  if ('error' in guest) return { 'guest-agent': `no answer: ${guest.error}` };
  return {
    'guest-hostname': guest.hostname,
    'guest-os': guest.kernel ? `${guest.os} (kernel ${guest.kernel})` : guest.os,
    'guest-addresses': guest.addresses.map((a) => `${a.interface} ${a.address}/${a.prefix}`),
  };
}

export function registerVmCommands(program: Command, ctx: CliContext): void {
  const vm = program.command('vm').description('virtual machines');
  registerMigrationCommands(vm, program, ctx);
  const ops = async () => vmOperations(await ctx.client(), ctx.config);
  /** A VM's life cycle, disks, NICs and HA: through the API when logged in. */
  const lifecycle = async (): Promise<VmLifecycle> => {
    const api = ctx.api;
    return api ? apiVmOperations(api) : ops();
  };
  const waitOption = (c: Command) =>
    c.option('--no-wait', 'return once the operation has started').option('--json', 'print JSON');

  waitOption(
    vm
      .command('create <vmId>')
      .description('create a VM on the most expedient host (or --host) and boot it')
      .requiredOption('--image <name>', 'image to create the disk from')
      .option('--memory <MiB>', 'memory in MiB', numberArg, 128)
      .option('--vcpus <n>', 'virtual CPUs', numberArg, 1)
      .option('--host <hostId>', 'run on this host instead of letting placement choose')
      .option('--project <name>', 'the project it belongs to (who may see and operate it)')
      .option('--label <key=value>', 'VM label (repeatable)', labelArg)
      .option('--host-label <key=value>', 'only hosts with this label (repeatable)', labelArg)
      .option('--boot-timeout <seconds>', 'how long the guest may take to boot', numberArg, 180)
      .option('--disk-size <size>', "root disk size, e.g. 20G (default: the image's)", sizeArg)
      .option('--data-disk <size>', 'add an empty data disk of this size, e.g. 10G (repeatable)', sizesArg)
      .option('--ssh-key <file>', 'OpenSSH public key file for the guest (repeatable)', sshKeyFileArg)
      .option('--nic <network>', 'add a NIC on this network (repeatable)', listArg)
      .option(
        '--ip <network=address>',
        "the NIC's address on that network (default: the pool's next)",
        labelArg,
      )
      .option(
        '--user-data <file>',
        'cloud-init user-data for the first boot (cloud-config or a script)',
        userDataFileArg,
      ),
  ).action(
    async (
      vmId: string,
      o: OutputOptions & {
        wait: boolean;
        image: string;
        memory: number;
        vcpus: number;
        host?: string;
        project?: string;
        label?: Record<string, string>;
        hostLabel?: Record<string, string>;
        bootTimeout: number;
        diskSize?: number;
        dataDisk?: number[];
        sshKey?: string[];
        userData?: string;
        nic?: string[];
        ip?: Record<string, string>;
      },
    ) => {
      const op = await (
        await lifecycle()
      ).create({
        vmId,
        image: o.image,
        memoryMiB: o.memory,
        vcpus: o.vcpus,
        host: o.host,
        project: o.project,
        labels: o.label,
        hostLabels: o.hostLabel,
        bootTimeoutSec: o.bootTimeout,
        diskSizeBytes: o.diskSize,
        dataDisks: o.dataDisk,
        sshKeys: o.sshKey,
        userData: o.userData,
        nics: nicRequests(o.nic ?? [], o.ip ?? {}),
      });
      await follow(op, o, (r) => console.log(`vm ${r.vmId} is running on ${r.host} (disk ${r.diskPath})`));
    },
  );

  waitOption(vm.command('start <vmId>').description('start a stopped VM on its host')).action(
    async (vmId: string, o: OutputOptions & { wait: boolean }) => {
      const op = await (await lifecycle()).start({ vmId });
      await follow(op, o, (r) => console.log(`vm ${r.vmId} is running on ${r.host}`));
    },
  );

  waitOption(
    vm
      .command('stop <vmId>')
      .description('power a VM off (forced after the grace period)')
      .option('--grace <seconds>', 'how long the guest may take to power off', numberArg, 30),
  ).action(async (vmId: string, o: OutputOptions & { wait: boolean; grace: number }) => {
    const op = await (await lifecycle()).stop({ vmId, gracefulTimeoutSec: o.grace });
    await follow(op, o, (r) => console.log(`vm ${r.vmId} stopped on ${r.host} (${r.how})`));
  });

  waitOption(
    vm
      .command('resize-disk <vmId>')
      .description("grow one of a VM's disks, online when it runs")
      .requiredOption('--size <size>', 'the new size, e.g. 40G (disks only grow)', sizeArg)
      .option('--disk <n>', '0 is the root disk, 1 the first data disk (vdb), …', numberArg, 0),
  ).action(async (vmId: string, o: OutputOptions & { wait: boolean; size: number; disk: number }) => {
    const op = await (await lifecycle()).resizeDisk({ vmId, sizeBytes: o.size, disk: o.disk });
    await follow(op, o, (r) =>
      console.log(
        `${o.disk === 0 ? 'disk' : `data disk ${o.disk}`} of vm ${r.vmId} grown ${formatBytes(r.previousBytes)} → ${formatBytes(r.sizeBytes)} on ${r.host} (${r.online ? 'online' : 'offline'})`,
      ),
    );
  });

  const nic = vm.command('nic').description("a VM's network cards, added and removed live");
  waitOption(
    nic
      .command('add <vmId> <network>')
      .description('add a NIC on a network (hot-plugged into a running VM, its address given by its agent)')
      .option('--ip <address>', "the NIC's address (default: the pool's next free one)"),
  ).action(async (vmId: string, network: string, o: OutputOptions & { wait: boolean; ip?: string }) => {
    const op = await (await lifecycle()).addNic({ vmId, network, ip: o.ip });
    await follow(op, o, (r) =>
      console.log(
        `vm ${r.vmId}: NIC ${r.nic.mac} on ${r.nic.network}, ${r.nic.ip}/${r.nic.prefix}; ${r.guest}`,
      ),
    );
  });
  waitOption(
    nic
      .command('remove <vmId> <network>')
      .description("remove a VM's NIC on a network (the running guest must release it)"),
  ).action(async (vmId: string, network: string, o: OutputOptions & { wait: boolean }) => {
    const op = await (await lifecycle()).removeNic({ vmId, network });
    await follow(op, o, (r) => console.log(`vm ${r.vmId}: NIC ${r.nic.mac} on ${r.nic.network} removed`));
  });

  waitOption(
    vm
      .command('delete <vmId>')
      .description('stop a VM if it runs, delete its disk and forget it')
      .option('--grace <seconds>', 'how long the guest may take to power off', numberArg, 30),
  ).action(async (vmId: string, o: OutputOptions & { wait: boolean; grace: number }) => {
    const op = await (await lifecycle()).delete({ vmId, gracefulTimeoutSec: o.grace });
    await follow(op, o, (r) => console.log(`vm ${r.vmId} deleted`));
  });

  waitOption(
    vm
      .command('set-ha <vmId>')
      .description('restart the VM when its guest dies or its host is lost (higher priority first)')
      .option('--priority <n>', `restart priority, 0-${HA_PRIORITY_MAX}`, numberArg, 0)
      .option('--off', 'turn HA protection off'),
  ).action(async (vmId: string, o: OutputOptions & { wait: boolean; priority: number; off?: boolean }) => {
    const op = await (await lifecycle()).setHa({ vmId, enabled: !o.off, priority: o.priority });
    await follow(op, o, (r) =>
      console.log(`vm ${r._id}: HA ${r.ha?.enabled ? `on, priority ${r.ha.priority}` : 'off'}`),
    );
  });

  vm.command('list')
    .description('list VMs')
    .option('--host <hostId>', 'only VMs on this host')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions & { host?: string }) => {
      const api = ctx.api;
      if (api) {
        const views = (await api.list<VmView>('/v1/vms')).filter((v) => !o.host || v.host === o.host);
        emit(o, views, (vs) =>
          printTable(vs.map(viewRow), [
            'id',
            'project',
            'state',
            'host',
            'memory-mib',
            'vcpus',
            'image',
            'ha',
          ]),
        );
        return;
      }
      const vms = await listVms(await ctx.inventory(), { host: o.host });
      emit(o, vms, (vs) =>
        printTable(vs.map(vmRow), ['id', 'state', 'host', 'memory-mib', 'vcpus', 'image', 'ha', 'updated']),
      );
    });

  vm.command('console <vmId>')
    .description(`attach to the VM's serial console on its host (detach with Ctrl-])`)
    .option('--log', 'print the end of the console log instead of attaching')
    .option('--bytes <n>', 'how much of the log to print', numberArg, 16 * 1024)
    .action(async (vmId: string, o: { log?: boolean; bytes: number }) => {
      if (ctx.api) {
        // The log is read on the VM's host by the controller; attaching needs the host itself.
        if (!o.log)
          throw new InvalidStateError(
            'attaching to a console needs its host: use --log, or --direct on the host',
          );
        const path = `/v1/vms/${encodeURIComponent(vmId)}/console?bytes=${o.bytes}`;
        process.stdout.write((await ctx.api.request<{ text: string }>('GET', path)).text);
        return;
      }
      const doc = await (await ctx.inventory()).vms.findOne({ _id: vmId });
      if (!doc) throw new NotFoundError('vm', vmId);
      if (!doc.host) throw new InvalidStateError(`vm ${vmId} has no host yet`);
      const files = localQemuHost(ctx.config.dataDir, doc.host).files(vmId);
      if (o.log) {
        process.stdout.write(consoleTail(files.serialLog, o.bytes));
        return;
      }
      await attachConsole(files.consoleSocket, `vm ${vmId} on ${doc.host}`);
    });

  vm.command('screenshot <vmId> <file>')
    .description("save a running VM's screen as a PNG (QEMU's VGA display, through QMP screendump)")
    .option('--json', 'print JSON')
    .action(async (vmId: string, file: string, o: OutputOptions) => {
      if (ctx.api) {
        const png = await ctx.api.download(`/v1/vms/${encodeURIComponent(vmId)}/screenshot`);
        fs.writeFileSync(file, png);
        // A PNG's IHDR chunk holds its width and height at bytes 16 and 20.
        const shot = {
          vmId,
          file,
          width: png.readUInt32BE(16),
          height: png.readUInt32BE(20),
          bytes: png.length,
        };
        emit(o, shot, (r) => console.log(`${r.file}: ${r.width}×${r.height} screen of vm ${r.vmId}`));
        return;
      }
      const doc = await (await ctx.inventory()).vms.findOne({ _id: vmId });
      if (!doc) throw new NotFoundError('vm', vmId);
      if (doc.state !== 'running' || !doc.host)
        throw new ValidationError('vmId', `vm ${vmId} is ${doc.state}: only a running VM has a screen`);
      const shot = await (await ops()).screenshot(vmId, doc.host);
      fs.writeFileSync(file, shot.png);
      emit(
        o,
        { vmId, host: doc.host, file, width: shot.width, height: shot.height, bytes: shot.png.length },
        (r) => console.log(`${r.file}: ${r.width}×${r.height} screen of vm ${r.vmId} on ${r.host}`),
      );
    });

  vm.command('show <vmId>')
    .description('show one VM')
    .option('--json', 'print JSON')
    .action(async (vmId: string, o: OutputOptions) => {
      const api = ctx.api;
      if (api) {
        const view = await api.request<VmView>('GET', `/v1/vms/${encodeURIComponent(vmId)}`);
        emit(o, view, (v) =>
          printFields({
            ...viewRow(v),
            disks: v.diskBytes?.map((bytes, i) => `vd${'abcdefghi'[i]} ${formatBytes(bytes)}`),
            nics: v.nics.map((n) => `${n.network} ${n.mac} ${n.ip}`),
            labels: Object.entries(v.labels).map(([k, x]) => `${k}=${x}`),
          }),
        );
        return;
      }
      const doc = await (await ctx.inventory()).vms.findOne({ _id: vmId });
      if (!doc) throw new NotFoundError('vm', vmId);
      // What the guest itself says, when it runs and has an agent; a silent agent is reported, not fatal.
      let guest: GuestInfo | { error: string } | undefined;
      if (doc.state === 'running' && doc.host && doc.guest.guestAgent) {
        guest = await (await ops()).guestInfo(vmId, doc.host).catch((err: Error) => ({
          error: String(err.cause instanceof Error ? err.cause.message : err.message),
        }));
      }
      emit(o, { ...doc, guestInfo: guest }, (v) =>
        printFields({
          ...vmRow(v),
          firmware: v.guest.firmware,
          ...guestFields(guest),
          disk: v.diskPath,
          nics: nicLines(v.guest.nics ?? [], guest),
          'data-disks': (v.guest.dataDisks ?? []).map(
            (bytes, i) => `vd${'bcdefghi'[i]} ${formatBytes(bytes)} (as created)`,
          ),
          reason: v.stateReason || undefined,
          labels: Object.entries(v.labels).map(([k, x]) => `${k}=${x}`),
          revision: v.revision,
        }),
      );
    });
}
