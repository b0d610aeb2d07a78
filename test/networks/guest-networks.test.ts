import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { vmOperations } from '../../client/vm-operations';
import { hostInterfaceNames, nicViews } from '../../domain/network';
import { readGuestFile } from '../../hypervisor/guest-agent';
import { isProcessRunning } from '../../hypervisor/qemu-host';
import { createNetwork } from '../../inventory/networks';
import { LAB_UPLINK, type LabNetwork } from '../../scripts/services/lab-network';
import { auditOperations } from '../../client/audit-operations';
import { parsePingRounds, type PingRound, reachProbe, steadyPinger } from '../../scripts/guest/workloads';
import { cli, GUEST_IMAGE, importGuestImage, qemuOn } from '../helpers/guests';
import { committedMigration } from '../helpers/committed-migration';
import { TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

/** The interfaces of one local host's namespace: name → its bridge (or '' when it has none). */
function linksOf(lab: LabNetwork, hostId: string): Map<string, string> {
  const out = execFileSync('ip', ['-n', lab.netnsOf(hostId), '-json', 'link', 'show'], { encoding: 'utf8' });
  return new Map(
    (JSON.parse(out) as { ifname: string; master?: string }[]).map((l) => [l.ifname, l.master ?? '']),
  );
}

/**
 * Guests on virtflow networks, in the local stack's namespaces (one per host, joined by a switch
 * namespace): VMs on one network reach each other across hosts, a VLAN carries only its own id,
 * and a migrating VM keeps its MAC and address while a peer pings it every 10 ms.
 */
describe('guest networks', () => {
  let stack: TestStack;
  let lab: LabNetwork;
  let vms: ReturnType<typeof vmOperations>;
  const where: Record<string, string> = {};

  const agentSocket = (vmId: string) => qemuOn(stack.config, where[vmId]).files(vmId).agentSocket;
  /** `[round, status]` of a guest's reach probe towards `target`. */
  const reach = async (vmId: string, target: string) => {
    const [round, status] = (await readGuestFile(agentSocket(vmId), `/run/reach.${target}`))
      .trim()
      .split(' ');
    return { round: Number(round), status };
  };
  const pingRounds = async (vmId: string) =>
    parsePingRounds(await readGuestFile(agentSocket(vmId), '/run/ping.rounds'));

  beforeAll(async () => {
    stack = await TestStack.create('guest-networks');
    lab = await stack.startLab();
    await stack.startControllerProcess();
    await stack.startAgents(['host-a', 'host-b', 'host-c'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    vms = vmOperations(stack.client, stack.config);
    await createNetwork(stack.inventory, { name: 'net-a', cidr: '10.20.0.0/24', uplink: LAB_UPLINK });
    await createNetwork(stack.inventory, {
      name: 'net-b',
      kind: 'vlan',
      vlanId: 20,
      uplink: LAB_UPLINK,
      cidr: '10.21.0.0/24',
    });
    await createNetwork(stack.inventory, {
      name: 'net-c',
      kind: 'vlan',
      vlanId: 30,
      uplink: LAB_UPLINK,
      cidr: '10.22.0.0/24',
    });
    const guests: [string, string, string, string, string][] = [
      // vm, host, network, address, user-data
      // 10.20.0.13 is b2's, once it gets a NIC on net-a live.
      ['a1', 'host-a', 'net-a', '10.20.0.11', reachProbe(['10.20.0.12', '10.20.0.13'])],
      ['a2', 'host-b', 'net-a', '10.20.0.12', steadyPinger('10.20.0.11')],
      ['b1', 'host-a', 'net-b', '10.21.0.11', reachProbe(['10.21.0.12'])],
      ['b2', 'host-c', 'net-b', '10.21.0.12', reachProbe(['10.21.0.11'])],
      // On VLAN 30, claiming addresses of net-a's and net-b's subnets instead of its own: neither
      // segment may reach it, and the reconciler sees it renumbered behind virtflow's back.
      [
        'c1',
        'host-b',
        'net-c',
        '10.22.0.11',
        reachProbe(['10.20.0.11', '10.21.0.11'], ['10.20.0.99/24', '10.21.0.99/24']),
      ],
    ];
    await Promise.all(
      guests.map(async ([vmId, host, network, ip, userData]) => {
        where[vmId] = host;
        const op = await vms.create({ vmId, image: GUEST_IMAGE, host, nics: [{ network, ip }], userData });
        await op.result();
      }),
    );
  }, 400_000);
  afterAll(() => stack?.stop());

  test('VMs on one network reach each other across hosts; another network or VLAN reaches neither', async () => {
    // Untagged net-a between host-a and host-b; VLAN 20 between host-a and host-c.
    await until('a1 to reach a2', async () => (await reach('a1', '10.20.0.12')).status === 'ok');
    await until('b1 to reach b2', async () => (await reach('b1', '10.21.0.12')).status === 'ok');
    await until('b2 to reach b1', async () => (await reach('b2', '10.21.0.11')).status === 'ok');
    // c1 has probed both segments in a whole round begun after they were shown to work.
    const { round: from } = await until('c1 to probe', () => reach('c1', '10.20.0.11'));
    await until(
      'c1 to probe two more rounds',
      async () => (await reach('c1', '10.21.0.11')).round >= from + 2,
    );
    expect((await reach('c1', '10.20.0.11')).status).toBe('unreachable');
    expect((await reach('c1', '10.21.0.11')).status).toBe('unreachable');

    // Each NIC is a tap named for its MAC on its network's bridge, inside its host's namespace.
    for (const vmId of ['a1', 'b1']) {
      const doc = await stack.inventory.vms.findOne({ _id: vmId });
      const nic = doc!.guest.nics![0];
      expect(nic.mac).toMatch(/^0a:76:66:/);
      expect(linksOf(lab, 'host-a').get(hostInterfaceNames.tap(nic.mac))).toBe(
        hostInterfaceNames.bridge(nic.network),
      );
      // The guest's own agent reports the configured address on the NIC with that MAC.
      const info = await vms.guestInfo(vmId, 'host-a');
      expect(nicViews(doc!.guest.nics!, info.addresses)).toEqual([
        expect.objectContaining({ configured: `${nic.ip}/24`, reported: [`${nic.ip}/24`], drift: undefined }),
      ]);
    }
    // VLAN 20 leaves host-a tagged on its uplink: through the kernel's 802.1Q sub-interface, or
    // where the kernel has none (this machine's), through the user-space tagger in its namespace.
    const vlan = hostInterfaceNames.vlan('net-b');
    const ns = lab.netnsOf('host-a');
    const details = execFileSync('ip', ['-n', ns, '-d', 'link', 'show', vlan], { encoding: 'utf8' });
    if (!/vlan protocol 802\.1Q id 20 /.test(details)) {
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
        .split('\n')
        .filter(Boolean);
      const taggers = pids.map((pid) =>
        fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, 4),
      );
      expect(taggers).toContainEqual([LAB_UPLINK, '20', hostInterfaceNames.vlanPort('net-b')]);
    }
  });

  test('a migrating VM keeps its MAC and address; a peer pinging it every 10 ms loses only the switch-over', async () => {
    const before = await stack.inventory.vms.findOne({ _id: 'a1' });
    // a2 pings a1 in rounds of 2 s: wait for a whole round answered (again before a second
    // attempt: a rolled-back one paused a1 while its target was refused).
    let steady: PingRound | undefined;
    const result = await committedMigration(stack.inventory, 'a1', async () => {
      steady = await until('a2 to ping a1 steadily', async () => {
        const rounds = await pingRounds('a2');
        const last = rounds.at(-1);
        return last && last.sent > 0 && last.received === last.sent ? last : undefined;
      });
      return vms.migrate({ vmId: 'a1', to: 'host-c' });
    });
    where.a1 = 'host-c';
    const endedIn = (await pingRounds('a2')).at(-1)!.round;
    // Two whole rounds after the migration ended, so the switch-over's round is complete.
    const rounds = await until('a2 to ping two more rounds', async () => {
      const all = await pingRounds('a2');
      return all.at(-1)!.round >= endedIn + 2 ? all : undefined;
    });
    const during = rounds.filter((r) => r.round > steady!.round && r.round <= endedIn + 1);
    const sent = during.reduce((n, r) => n + r.sent, 0);
    const lost = during.reduce((n, r) => n + r.sent - r.received, 0);
    console.log(
      `migration of a1 (downtime ${result.downtimeMs} ms): a peer pinging every 10 ms lost ${lost} of ${sent} packets`,
    );
    expect(sent).toBeGreaterThan(100);
    // Generous: one second's pings. QEMU announces the guest at switch-over; the figure is a few.
    expect(lost).toBeLessThanOrEqual(100);
    expect(rounds.at(-1)!.received).toBe(rounds.at(-1)!.sent);

    // The result says what the network saw, as virtflow knows it.
    expect(result.network).toEqual({
      networks: ['net-a'],
      outageMs: result.downtimeMs,
      announced: 'by the destination as it resumed, and again before it was verified',
    });
    const after = await stack.inventory.vms.findOne({ _id: 'a1' });
    expect(after!.host).toBe('host-c');
    expect(after!.guest.nics).toEqual(before!.guest.nics);
    const info = await vms.guestInfo('a1', 'host-c');
    expect(nicViews(after!.guest.nics!, info.addresses)[0].drift).toBeUndefined();
    const tap = hostInterfaceNames.tap(after!.guest.nics![0].mac);
    expect(linksOf(lab, 'host-c').get(tap)).toBe(hostInterfaceNames.bridge('net-a'));
    expect(linksOf(lab, 'host-a').has(tap)).toBe(false);
  });

  test('an agent killed while its VMs run leaves taps and bridges; guests stay reachable; the restarted agent re-adopts them', async () => {
    const agent = stack.agents.get('host-c')!;
    agent.process.child.kill('SIGKILL');
    await until('the agent to die', async () => !agent.process.running);
    const tap = hostInterfaceNames.tap(
      (await stack.inventory.vms.findOne({ _id: 'a1' }))!.guest.nics![0].mac,
    );
    expect(linksOf(lab, 'host-c').get(tap)).toBe(hostInterfaceNames.bridge('net-a'));
    const last = (await pingRounds('a2')).at(-1)!.round;
    const rounds = await until('a2 to ping two more rounds', async () => {
      const all = await pingRounds('a2');
      return all.at(-1)!.round >= last + 2 ? all : undefined;
    });
    for (const r of rounds.slice(-2)) expect(r.received).toBe(r.sent);
    // Where the kernel has no VLAN devices (this machine's), b2's VLAN 20 runs through host-c's
    // user-space tagger: one that dies while no agent runs is started again by the next agent.
    const taggerPidfile = path.join(qemuOn(stack.config, 'host-c').runDir, 'vlan-net-b.pid');
    const tagger = fs.existsSync(taggerPidfile) ? Number(fs.readFileSync(taggerPidfile, 'utf8')) : undefined;
    if (tagger) process.kill(tagger, 'SIGKILL');

    await stack.startAgent('host-c', ['--memory', '4096']);
    if (tagger) {
      const again = Number(fs.readFileSync(taggerPidfile, 'utf8'));
      expect(again).not.toBe(tagger);
      expect(isProcessRunning(again)).toBe(true);
    }
    const { round: probed } = await reach('b1', '10.21.0.12');
    await until('b1 to reach b2 on VLAN 20 again', async () => {
      const r = await reach('b1', '10.21.0.12');
      return r.round > probed + 1 && r.status === 'ok';
    });
    const host = await stack.inventory.hosts.findOne({ _id: 'host-c' });
    expect(host!.facts.network).toEqual({ uplinks: [LAB_UPLINK] });
    // Every network rides on uplink0: the host carries them all, by name.
    const shown = await cli(stack.env, ['host', 'show', 'host-c', '--json']);
    expect(JSON.parse(shown.stdout).networks).toEqual(['net-a', 'net-b', 'net-c']);
    const info = await vms.guestInfo('a1', 'host-c');
    expect(info.addresses.map((a) => a.address)).toContain('10.20.0.11');
  });

  test('a NIC added live gets its address through the agent, is recorded at its slot, and goes when the guest releases it', async () => {
    expect((await reach('a1', '10.20.0.13')).status).toBe('unreachable');
    const added = await (await vms.addNic({ vmId: 'b2', network: 'net-a', ip: '10.20.0.13' })).result();
    expect(added).toMatchObject({ live: true, nic: { network: 'net-a', ip: '10.20.0.13', slot: 1 } });
    expect(added.guest).toMatch(/^configured in the guest as eth1 10\.20\.0\.13\/24 through its agent/);
    await until('a1 to reach b2 on net-a', async () => (await reach('a1', '10.20.0.13')).status === 'ok');

    const doc = await stack.inventory.vms.findOne({ _id: 'b2' });
    expect(doc!.guest.nics!.map((n) => n.network)).toEqual(['net-b', 'net-a']);
    const info = await vms.guestInfo('b2', 'host-c');
    expect(nicViews(doc!.guest.nics!, info.addresses).map((v) => v.drift)).toEqual([undefined, undefined]);
    // Recorded in the guest's spec at its slot: what a migration's destination is started with.
    const spec = qemuOn(stack.config, 'host-c').find('b2')!.spec;
    expect(spec.nics!.map((n) => [n.network, n.mac, n.slot])).toEqual(
      doc!.guest.nics!.map((n) => [n.network, n.mac, n.slot]),
    );

    await (await vms.removeNic({ vmId: 'b2', network: 'net-a' })).result();
    expect(linksOf(lab, 'host-c').has(hostInterfaceNames.tap(added.nic.mac))).toBe(false);
    const after = await vms.guestInfo('b2', 'host-c');
    expect(after.addresses.some((a) => a.mac === added.nic.mac)).toBe(false);
    expect((await stack.inventory.vms.findOne({ _id: 'b2' }))!.guest.nics!.map((n) => n.network)).toEqual([
      'net-b',
    ]);
    expect((await stack.inventory.nicClaims.find({ vmId: 'b2' }).toArray()).map((c) => c.network)).toEqual([
      'net-b',
      'net-b',
    ]);
  });

  test('the reconciler reports a guest on another address than configured, and a bridge no network owns', async () => {
    // What a deleted network's bridge would leave: a virtflow-named bridge of no network.
    const stray = hostInterfaceNames.bridge('deleted-network');
    execFileSync('ip', ['-n', lab.netnsOf('host-b'), 'link', 'add', stray, 'type', 'bridge']);
    const r = await (await auditOperations(stack.client, stack.config).run()).result();
    const found = Object.values(r.hosts).flatMap((h) => ('found' in h ? h.found : []));
    const c1 = (await stack.inventory.vms.findOne({ _id: 'c1' }))!.guest.nics![0];
    expect(found).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'nic-drift', subject: `vm/c1/nic/${c1.mac}`, state: 'open' }),
        expect.objectContaining({ kind: 'orphan-interface', subject: `host/host-b/interface/${stray}` }),
      ]),
    );
    // Nothing else: every other NIC has its address, every tap and bridge an owner.
    expect(found.filter((f) => ['nic-drift', 'orphan-interface'].includes(f.kind))).toHaveLength(2);
    const drift = await stack.inventory.drift.findOne({ kind: 'nic-drift' });
    expect(drift!.message).toBe(
      `vm c1 on network net-c: the guest reports 10.20.0.99/24, 10.21.0.99/24 on the NIC with MAC ${c1.mac}, not 10.22.0.11/24`,
    );
    execFileSync('ip', ['-n', lab.netnsOf('host-b'), 'link', 'del', stray]);
  });

  test('deleting a VM removes its tap and gives its address and MAC back', async () => {
    const nic = (await stack.inventory.vms.findOne({ _id: 'c1' }))!.guest.nics![0];
    await (await vms.delete({ vmId: 'c1' })).result();
    expect(linksOf(lab, 'host-b').has(hostInterfaceNames.tap(nic.mac))).toBe(false);
    expect(await stack.inventory.nicClaims.find({ vmId: 'c1' }).toArray()).toEqual([]);
  });

  test('removing the lab removes every namespace, bridge and tap it made', async () => {
    for (const hostId of ['host-a', 'host-b', 'host-c'])
      for (const g of qemuOn(stack.config, hostId).list()) qemuOn(stack.config, hostId).kill(g.vmId);
    await lab.destroy();
    expect(await lab.namespaces()).toEqual([]);
  });
});
