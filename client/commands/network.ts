import { InvalidArgumentError, type Command } from 'commander';
import { intToIpv4, poolRange, type NetworkSpec } from '../../domain/network';
import { createNetwork, deleteNetwork, listNetworks, networkWithAddresses } from '../../inventory/networks';
import type { NetworkDoc } from '../../inventory/schemas';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';
import { listArg, numberArg } from './args';

/** `--pool FIRST-LAST`: the two addresses; the schema checks each and where they lie. */
function poolArg(value: string): { first: string; last: string } {
  const m = /^([^-\s]+)-([^-\s]+)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not FIRST-LAST (e.g. 10.20.0.10-10.20.0.200)`);
  return { first: m[1], last: m[2] };
}

function describeKind(s: NetworkSpec): string {
  if (s.kind === 'vlan') return `vlan ${s.vlanId} on ${s.uplink}`;
  return s.uplink ? `bridge on ${s.uplink} (untagged)` : 'bridge (inside each host)';
}

function describePool(s: NetworkSpec): string {
  const r = poolRange(s);
  return `${intToIpv4(r.first)}-${intToIpv4(r.last)}`;
}

const networkPath = (name: string) => `/v1/networks/${encodeURIComponent(name)}`;

/** Networks: through the API when logged in, where any grant reads them and a fleet admin changes them. */
export function registerNetworkCommands(program: Command, ctx: CliContext): void {
  const network = program.command('network').description('networks VMs attach to: isolated bridges or VLANs');

  network
    .command('create <name>')
    .description('record a network; every host that runs a VM on it realises it')
    .requiredOption('--cidr <cidr>', 'its IPv4 subnet, e.g. 10.20.0.0/24')
    .option('--gateway <ip>', 'the gateway guests route through (inside the subnet)')
    .option('--pool <first-last>', 'the addresses virtflow hands out (default: the whole subnet)', poolArg)
    .option('--dns <ip>', 'a DNS server for the guests (repeatable, up to 3)', listArg)
    .option('--vlan <id>', 'a VLAN network with this id (1-4094), on --uplink', numberArg)
    .option(
      '--uplink <interface>',
      "each host's interface that carries the network between hosts (tagged with --vlan, else untagged)",
    )
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        o: OutputOptions & {
          cidr: string;
          gateway?: string;
          pool?: { first: string; last: string };
          dns?: string[];
          vlan?: number;
          uplink?: string;
        },
      ) => {
        const spec = {
          name,
          kind: o.vlan !== undefined ? 'vlan' : 'bridge',
          vlanId: o.vlan,
          uplink: o.uplink,
          cidr: o.cidr,
          gateway: o.gateway,
          pool: o.pool,
          dns: o.dns,
        };
        const doc = ctx.api
          ? await ctx.api.request<NetworkDoc>('POST', '/v1/networks', spec)
          : await createNetwork(await ctx.inventory(), spec);
        emit(o, doc, (d) => console.log(`network ${d._id}: ${d.spec.cidr}, ${describeKind(d.spec)}`));
      },
    );

  network
    .command('list')
    .description('list networks with their subnet and pool')
    .option('--json', 'print JSON')
    .action(async (o: OutputOptions) => {
      const nets = await ctx.read('/v1/networks', listNetworks);
      emit(o, nets, (ns) =>
        printTable(
          ns.map((n) => ({
            name: n._id,
            kind: describeKind(n.spec),
            cidr: n.spec.cidr,
            gateway: n.spec.gateway ?? '',
            pool: describePool(n.spec),
          })),
          ['name', 'kind', 'cidr', 'gateway', 'pool'],
        ),
      );
    });

  network
    .command('show <name>')
    .description('show one network and the addresses its VMs hold')
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions) => {
      const shown = await ctx.read(networkPath(name), (inv) => networkWithAddresses(inv, name));
      emit(o, shown, (v) => {
        printFields({
          name: v._id,
          kind: describeKind(v.spec),
          cidr: v.spec.cidr,
          gateway: v.spec.gateway ?? '(none)',
          pool: describePool(v.spec),
          dns: v.spec.dns.join(', ') || '(none)',
          'addresses-in-use': v.addresses.length,
        });
        if (v.addresses.length) printTable(v.addresses, ['address', 'vm']);
      });
    });

  network
    .command('delete <name>')
    .description('delete a network no VM uses')
    .action(async (name: string) => {
      if (ctx.api) await ctx.api.request('DELETE', networkPath(name));
      else await deleteNetwork(await ctx.inventory(), name);
      console.log(`network ${name} deleted`);
    });
}
