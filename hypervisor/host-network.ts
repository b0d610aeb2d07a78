import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ipCommand } from './ip-command';
import { hostInterfaceNames, type HostNetworking, type NicConfig } from '../domain/network';

/**
 * How QEMU attaches one NIC: its configuration (network, MAC, PCI slot, VLAN), the bridge, and
 * the helper that opens its tap there. Kept in the guest's recorded spec, so a restarted agent
 * can make the network side again from it.
 */
export interface GuestNic extends NicConfig {
  bridge: string;
  tap: string;
  /** QEMU's `-netdev tap,helper=`: run by QEMU through /bin/sh with `--fd=N --br=…` appended. */
  helper: string;
}

export interface HostNetworkOptions {
  /** The network namespace the host's bridges and taps live in (the local stack's hosts); none on a real host. */
  netns?: string;
  /** Interfaces that carry networks between hosts (tagged for VLANs, untagged for bridges). */
  uplinks: string[];
  /** The tap helper binary (tools/tap-helper). */
  tapHelper: string;
  /** The user-space VLAN tagger (tools/vlan-port), for kernels without VLAN devices. */
  vlanPort: string;
  /** Where the taggers' pidfiles and logs live (the host's run directory). */
  runDir: string;
}

/** One link as `ip -json -details link show` reports it. */
interface IpLink {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

/** An interface this host made for networks: a bridge, a VLAN sub-interface or a tap. */
export interface NetworkInterface {
  name: string;
  kind: 'bridge' | 'vlan' | 'tap';
  master?: string;
}

/**
 * The networks side of one host: Linux bridges (one per network, with the uplink or its VLAN
 * sub-interface as a port) and, through the tap helper, one tap per guest NIC on its bridge.
 * Everything is made with `ip` inside the host's namespace, so on the local stack nothing
 * touches the machine's own interfaces. Idempotent: a second VM on a network finds its bridge.
 */
export class HostNetwork {
  constructor(private readonly opts: HostNetworkOptions) {}

  get facts(): HostNetworking {
    return { uplinks: this.opts.uplinks };
  }

  private ip(args: string[]): Promise<string> {
    return ipCommand(this.opts.netns ? ['-n', this.opts.netns, ...args] : args);
  }

  private async links(): Promise<IpLink[]> {
    return JSON.parse((await this.ip(['-json', '-details', 'link', 'show'])) || '[]') as IpLink[];
  }

  /** Checks the uplinks exist (an agent refuses to start with a typo in one) and brings them up. */
  async check(): Promise<void> {
    const names = new Set((await this.links()).map((l) => l.ifname));
    for (const uplink of this.opts.uplinks) {
      if (!names.has(uplink))
        throw new Error(
          `uplink ${uplink} does not exist${this.opts.netns ? ` in network namespace ${this.opts.netns}` : ''}`,
        );
      await this.ip(['link', 'set', uplink, 'up']);
    }
  }

  /** Makes the bridge of each NIC's network (and its uplink port), and says how QEMU attaches each NIC. */
  async attach(nics: NicConfig[]): Promise<GuestNic[]> {
    // One look at the host's links; a network two NICs share is made once.
    const links = new Map((await this.links()).map((l) => [l.ifname, l]));
    for (const nic of nics) await this.ensureBridge(nic, links);
    return nics.map((nic) => {
      const tap = hostInterfaceNames.tap(nic.mac);
      const enter = this.opts.netns ? `ip netns exec ${this.opts.netns} ` : '';
      return {
        ...nic,
        bridge: hostInterfaceNames.bridge(nic.network),
        tap,
        helper: `${enter}${this.opts.tapHelper} ${tap}`,
      };
    });
  }

  /** `links` is what the host had, and is kept up to date with what this makes. */
  private async ensureBridge(nic: NicConfig, links: Map<string, IpLink>): Promise<void> {
    const bridge = hostInterfaceNames.bridge(nic.network);
    if (!links.has(bridge)) {
      await this.addLink(bridge, ['link', 'add', bridge, 'type', 'bridge']);
      links.set(bridge, { ifname: bridge });
    }
    await this.ip(['link', 'set', bridge, 'up']);
    if (nic.kind === 'vlan' && nic.uplink && nic.vlanId !== undefined) {
      const vlan = hostInterfaceNames.vlan(nic.network);
      if (!links.has(vlan)) {
        const kind = await this.addVlanLink(vlan, nic.network, nic.uplink, nic.vlanId);
        links.set(vlan, { ifname: vlan, linkinfo: { info_kind: kind } });
      }
      if (links.get(vlan)?.linkinfo?.info_kind !== 'vlan')
        this.ensureVlanPort(nic.network, nic.uplink, nic.vlanId);
      await this.ip(['link', 'set', vlan, 'master', bridge, 'up']);
    } else if (nic.uplink && links.get(nic.uplink)?.master !== bridge) {
      await this.ip(['link', 'set', nic.uplink, 'master', bridge, 'up']);
      links.set(nic.uplink, { ifname: nic.uplink, master: bridge });
    }
  }

  /**
   * The network's VLAN link: the kernel's 802.1Q sub-interface of the uplink where the kernel
   * has VLAN devices; otherwise one end of a veth pair whose other end the user-space tagger
   * joins to the uplink's VLAN (tools/vlan-port).
   */
  private async addVlanLink(
    vlan: string,
    network: string,
    uplink: string,
    vlanId: number,
  ): Promise<'vlan' | 'veth'> {
    try {
      await this.addLink(vlan, [
        'link',
        'add',
        'link',
        uplink,
        'name',
        vlan,
        'type',
        'vlan',
        'id',
        String(vlanId),
      ]);
      return 'vlan';
    } catch (err) {
      if (!/Unknown device type|not supported/i.test((err as Error).message)) throw err;
    }
    const port = hostInterfaceNames.vlanPort(network);
    await this.addLink(vlan, ['link', 'add', vlan, 'type', 'veth', 'peer', 'name', port]);
    await this.ip(['link', 'set', port, 'up']);
    return 'veth';
  }

  private vlanPortPidfile(network: string): string {
    return path.join(this.opts.runDir, `vlan-${network}.pid`);
  }

  /**
   * Starts the network's user-space tagger unless it runs: detached with a pidfile, like a
   * guest's QEMU, so it outlives the agent and a restarted agent finds it.
   */
  private ensureVlanPort(network: string, uplink: string, vlanId: number): void {
    const pidfile = this.vlanPortPidfile(network);
    const port = hostInterfaceNames.vlanPort(network);
    if (runningTagger(pidfile, port)) return;
    const log = fs.openSync(path.join(this.opts.runDir, `vlan-${network}.log`), 'a');
    const args = [this.opts.vlanPort, uplink, String(vlanId), port];
    const child = this.opts.netns
      ? spawn('ip', ['netns', 'exec', this.opts.netns, ...args], {
          detached: true,
          stdio: ['ignore', log, log],
        })
      : spawn(args[0], args.slice(1), { detached: true, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    fs.writeFileSync(pidfile, `${child.pid}\n`);
    child.unref();
  }

  /** `ip link add …`, tolerating a concurrent start that made the same link first. */
  private async addLink(name: string, args: string[]): Promise<void> {
    try {
      await this.ip(args);
    } catch (err) {
      if (!(await this.links()).some((l) => l.ifname === name)) throw err;
    }
  }

  /** Takes NICs' taps off their bridges (a migrated source, paused): their MACs are forgotten there. */
  async detach(nics: GuestNic[]): Promise<void> {
    // A tap already gone (its QEMU quit) is as detached as it gets.
    for (const nic of nics) await this.ip(['link', 'set', nic.tap, 'nomaster']).catch(() => undefined);
  }

  /** Puts NICs' taps back on their bridges (a migration rolled back: the source runs on). */
  async reattach(nics: GuestNic[]): Promise<void> {
    for (const nic of nics) await this.ip(['link', 'set', nic.tap, 'master', nic.bridge, 'up']);
  }

  /** The bridges, VLAN sub-interfaces and taps this host made (by virtflow's name prefixes). */
  async interfaces(): Promise<NetworkInterface[]> {
    const kinds = { vfb: 'bridge', vfv: 'vlan', vfw: 'vlan', vft: 'tap' } as const;
    return (await this.links()).flatMap((l) => {
      const kind = kinds[l.ifname.slice(0, 3) as keyof typeof kinds];
      return kind ? [{ name: l.ifname, kind, master: l.master }] : [];
    });
  }
}

/** Whether the pidfile names a running tagger of that port (not a recycled pid). */
function runningTagger(pidfile: string, port: string): boolean {
  try {
    const pid = Number(fs.readFileSync(pidfile, 'utf8').trim());
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => a.endsWith('vlan-port')) && argv.includes(port);
  } catch {
    return false;
  }
}
