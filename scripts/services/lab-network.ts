import { createHash } from 'node:crypto';
import { ipCommand } from '../../hypervisor/ip-command';

/** The interface each local host carries its networks on, as a real host would name its NIC. */
export const LAB_UPLINK = 'uplink0';

/**
 * The local stack's "datacenter network": one network namespace per local host and one playing
 * the physical switch (a plain bridge, so VLAN tags cross it untouched), each host joined to
 * the switch by a veth pair whose host end is its uplink. Host agents make their bridges, VLAN
 * sub-interfaces and taps inside their own namespace. Nothing here touches the machine's own
 * interfaces, and removing the namespaces removes everything made in them.
 */
export class LabNetwork {
  private constructor(readonly prefix: string) {}

  /** The namespace names of a data directory: stable, so a later start finds a crashed run's. */
  static prefixFor(dataDir: string): string {
    return `vf-${createHash('sha256').update(dataDir).digest('hex').slice(0, 8)}-`;
  }

  get switchNs(): string {
    return `${this.prefix}switch`;
  }

  netnsOf(hostId: string): string {
    return `${this.prefix}${hostId}`;
  }

  /** The agent arguments that give a local host its namespace and uplink. */
  agentArgs(hostId: string): string[] {
    return ['--netns', this.netnsOf(hostId), '--uplink', LAB_UPLINK];
  }

  /**
   * Creates the namespaces afresh: whatever a crashed run of the same data directory left goes
   * first. `switchAddress` (such as 10.20.0.1/24) puts an address on the switch's untagged
   * segment: the lab's one router, from which an operator reaches the guests.
   */
  static async create(dataDir: string, hostIds: string[], switchAddress?: string): Promise<LabNetwork> {
    const lab = new LabNetwork(LabNetwork.prefixFor(dataDir));
    await lab.destroy();
    await ipCommand(['netns', 'add', lab.switchNs]);
    await ipCommand(['-n', lab.switchNs, 'link', 'add', 'switch0', 'type', 'bridge']);
    await ipCommand(['-n', lab.switchNs, 'link', 'set', 'switch0', 'up']);
    if (switchAddress) await ipCommand(['-n', lab.switchNs, 'addr', 'add', switchAddress, 'dev', 'switch0']);
    for (const [i, hostId] of hostIds.entries()) {
      const ns = lab.netnsOf(hostId);
      const port = `port${i}`;
      await ipCommand(['netns', 'add', ns]);
      await ipCommand(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ipCommand([
        '-n',
        lab.switchNs,
        'link',
        'add',
        port,
        'type',
        'veth',
        'peer',
        'name',
        LAB_UPLINK,
        'netns',
        ns,
      ]);
      await ipCommand(['-n', lab.switchNs, 'link', 'set', port, 'master', 'switch0', 'up']);
      await ipCommand(['-n', ns, 'link', 'set', LAB_UPLINK, 'up']);
    }
    return lab;
  }

  /** A lab's namespaces as they are, to remove them (a stack stopping, or one that crashed). */
  static of(dataDir: string): LabNetwork {
    return new LabNetwork(LabNetwork.prefixFor(dataDir));
  }

  /** Every namespace of this lab that exists (a crashed run's, too). */
  async namespaces(): Promise<string[]> {
    return (await ipCommand(['netns', 'list']))
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter((n) => n.startsWith(this.prefix));
  }

  /**
   * Removes every namespace of this lab, and with them every bridge, tap and veth made inside.
   * Processes still inside (a host's VLAN taggers) are killed first: they would keep it alive.
   */
  async destroy(): Promise<void> {
    for (const ns of await this.namespaces()) {
      const stdout = await ipCommand(['netns', 'pids', ns]);
      for (const pid of stdout.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      await ipCommand(['netns', 'del', ns]);
    }
  }
}
