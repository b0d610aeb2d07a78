import { parseInput } from '../../domain/errors';
import {
  cannotServe,
  conflictWith,
  hostInterfaceNames,
  interfaceNameSchema,
  networkConfigYaml,
  nicConfig,
  nicViews,
  type NicConfig,
  intToIpv4,
  ipv4ToInt,
  macFor,
  networkSpecSchema,
  poolRange,
  type NetworkSpec,
} from '../../domain/network';

const parse = (input: Record<string, unknown>): NetworkSpec => parseInput(networkSpecSchema, input, '');

describe('network specs', () => {
  test.each([
    [
      'a host address given as the network',
      { name: 'a', cidr: '10.20.0.5/24' },
      /^cidr: 10\.20\.0\.5\/24 is not a network address: did you mean 10\.20\.0\.0\/24\?/,
    ],
    [
      'an address that is not IPv4',
      { name: 'a', cidr: '10.20.0.256/24' },
      /^cidr: 10\.20\.0\.256 is not an IPv4 address/,
    ],
    [
      'a network too small for hosts',
      { name: 'a', cidr: '10.20.0.0/31' },
      /^cidr: the prefix length must be 8 to 30/,
    ],
    ['no prefix length', { name: 'a', cidr: '10.20.0.0' }, /^cidr: must be an IPv4 network/],
    [
      'a gateway outside the network',
      { name: 'a', cidr: '10.20.0.0/24', gateway: '10.20.1.1' },
      /^gateway: 10\.20\.1\.1 is not a host address of 10\.20\.0\.0\/24/,
    ],
    [
      'the broadcast address as gateway',
      { name: 'a', cidr: '10.20.0.0/24', gateway: '10.20.0.255' },
      /^gateway: 10\.20\.0\.255 is not a host address/,
    ],
    [
      'a pool reaching outside the network',
      { name: 'a', cidr: '10.20.0.0/24', pool: { first: '10.20.0.10', last: '10.20.1.10' } },
      /^pool: 10\.20\.1\.10 is not a host address/,
    ],
    [
      'a pool backwards',
      { name: 'a', cidr: '10.20.0.0/24', pool: { first: '10.20.0.50', last: '10.20.0.10' } },
      /^pool: 10\.20\.0\.50 comes after 10\.20\.0\.10/,
    ],
    [
      'VLAN id 0',
      { name: 'a', kind: 'vlan', vlanId: 0, uplink: 'eth1', cidr: '10.20.0.0/24' },
      /^vlanId: VLAN ids are 1 to 4094/,
    ],
    [
      'VLAN id 4095',
      { name: 'a', kind: 'vlan', vlanId: 4095, uplink: 'eth1', cidr: '10.20.0.0/24' },
      /^vlanId: VLAN ids are 1 to 4094/,
    ],
    [
      'a vlan network without an uplink',
      { name: 'a', kind: 'vlan', vlanId: 10, cidr: '10.20.0.0/24' },
      /^uplink: a vlan network needs the uplink/,
    ],
    [
      'an uplink that is not an interface name',
      { name: 'a', kind: 'vlan', vlanId: 10, uplink: 'eth1; reboot', cidr: '10.20.0.0/24' },
      /^uplink: must be a network interface name/,
    ],
    [
      'an uplink name over 15 characters',
      { name: 'a', kind: 'vlan', vlanId: 10, uplink: 'a-very-long-uplink0', cidr: '10.20.0.0/24' },
      /^uplink: must be a network interface name/,
    ],
    [
      'a VLAN id on a bridge network',
      { name: 'a', vlanId: 10, cidr: '10.20.0.0/24' },
      /^vlanId: only a vlan network has a VLAN id/,
    ],
    [
      'a DNS server that is not an address',
      { name: 'a', cidr: '10.20.0.0/24', dns: ['resolver'] },
      /^dns\.0: must be an IPv4 address/,
    ],
  ])('refuses %s, naming the field', (_what, input, message) => {
    expect(() => parse(input)).toThrow(message);
  });

  test('accepts what an operator means, and hands out the pool or the subnet but its gateway', () => {
    const lab = parse({ name: 'lab', cidr: '10.20.0.0/24', gateway: '10.20.0.1', dns: ['10.20.0.1'] });
    expect(lab.kind).toBe('bridge');
    const range = poolRange(lab);
    expect([intToIpv4(range.first), intToIpv4(range.last), intToIpv4(range.gateway!)]).toEqual([
      '10.20.0.1',
      '10.20.0.254',
      '10.20.0.1',
    ]);
    const office = parse({
      name: 'office',
      kind: 'vlan',
      vlanId: 42,
      uplink: 'eth1.0',
      cidr: '192.168.8.0/22',
      pool: { first: '192.168.8.100', last: '192.168.11.200' },
    });
    expect(poolRange(office).last - poolRange(office).first + 1).toBe(869);
    expect(ipv4ToInt('010.0.0.1')).toBeUndefined();
  });

  test('a network that overlaps another, or takes its VLAN on the same uplink, is refused', () => {
    const lab = parse({ name: 'lab', cidr: '10.20.0.0/24' });
    const office = parse({ name: 'office', kind: 'vlan', vlanId: 42, uplink: 'eth1', cidr: '10.30.0.0/24' });
    expect(conflictWith(parse({ name: 'wide', cidr: '10.20.0.0/16' }), [lab, office])).toEqual({
      field: 'cidr',
      message: '10.20.0.0/16 overlaps 10.20.0.0/24 of network lab',
    });
    expect(
      conflictWith(parse({ name: 'v', kind: 'vlan', vlanId: 42, uplink: 'eth1', cidr: '10.40.0.0/24' }), [
        lab,
        office,
      ])?.field,
    ).toBe('vlanId');
    expect(
      conflictWith(parse({ name: 'v', kind: 'vlan', vlanId: 42, uplink: 'eth2', cidr: '10.40.0.0/24' }), [
        lab,
        office,
      ]),
    ).toBeUndefined();
    expect(conflictWith(parse({ name: 'lab', cidr: '10.50.0.0/24' }), [lab])?.field).toBe('name');
  });

  test("virtflow's MACs are locally administered unicast addresses", () => {
    const mac = macFor(0xabcdef);
    expect(mac).toBe('0a:76:66:ab:cd:ef');
    const first = parseInt(mac.slice(0, 2), 16);
    expect(first & 0b10).toBe(0b10);
    expect(first & 0b01).toBe(0);
  });

  test('an uplink carries the untagged traffic of one bridge network', () => {
    const lab = parse({ name: 'lab', cidr: '10.20.0.0/24', uplink: 'eth1' });
    expect(conflictWith(parse({ name: 'b', cidr: '10.40.0.0/24', uplink: 'eth1' }), [lab])).toEqual({
      field: 'uplink',
      message: 'the untagged traffic of eth1 is network lab',
    });
    expect(conflictWith(parse({ name: 'b', cidr: '10.40.0.0/24', uplink: 'eth2' }), [lab])).toBeUndefined();
    expect(conflictWith(parse({ name: 'b', cidr: '10.40.0.0/24' }), [lab])).toBeUndefined();
  });

  test('host interface names fit Linux (15 characters) and are fixed by the network and the MAC', () => {
    const long = 'a-network-name-of-sixty-three-characters-is-still-a-dns-label-x';
    for (const name of [
      hostInterfaceNames.bridge(long),
      hostInterfaceNames.vlan(long),
      hostInterfaceNames.vlanPort(long),
      hostInterfaceNames.tap('0a:76:66:ab:cd:ef'),
    ])
      expect(interfaceNameSchema.safeParse(name).success).toBe(true);
    expect(hostInterfaceNames.bridge('lab')).toBe(hostInterfaceNames.bridge('lab'));
    expect(hostInterfaceNames.bridge('lab')).not.toBe(hostInterfaceNames.bridge('lab2'));
    expect(hostInterfaceNames.tap('0a:76:66:ab:cd:ef')).toBe('vft66abcdef');
  });

  const labNet = { name: 'lab', cidr: '10.20.0.0/24', gateway: '10.20.0.1', dns: ['10.20.0.1'] };
  const nic = (over: Partial<NicConfig> = {}): NicConfig => ({
    ...nicConfig(parse(labNet), '0a:76:66:00:00:01', '10.20.0.5', 0),
    ...over,
  });

  test("the guest's network-config: static addresses by MAC, one default route, DNS", () => {
    const second = nic({
      network: 'db',
      mac: '0a:76:66:00:00:02',
      ip: '10.30.0.7',
      gateway: '10.30.0.1',
      dns: [],
    });
    expect(networkConfigYaml([nic(), second])).toBe(
      [
        'version: 2',
        'ethernets:',
        '  nic0:',
        '    match:',
        '      macaddress: "0a:76:66:00:00:01"',
        '    set-name: eth0',
        '    addresses:',
        '      - "10.20.0.5/24"',
        '    routes:',
        '      - to: "0.0.0.0/0"',
        '        via: "10.20.0.1"',
        '    nameservers:',
        '      addresses:',
        '        - "10.20.0.1"',
        '  nic1:',
        '    match:',
        '      macaddress: "0a:76:66:00:00:02"',
        '    set-name: eth1',
        '    addresses:',
        '      - "10.30.0.7/24"',
        '',
      ].join('\n'),
    );
  });

  test("a NIC's configured address beside the guest's report: agreement, another address, none", () => {
    const n = nic();
    const at = (address: string, mac = n.mac) => ({ mac, address, prefix: 24 });
    expect(nicViews([n])).toEqual([{ network: 'lab', mac: n.mac, configured: '10.20.0.5/24' }]);
    expect(nicViews([n], [at('10.20.0.5'), at('fe80::1')])[0].drift).toBeUndefined();
    expect(nicViews([n], [at('10.20.0.9')])[0].drift).toBe(
      'the guest reports 10.20.0.9/24 on the NIC with MAC 0a:76:66:00:00:01, not 10.20.0.5/24',
    );
    expect(nicViews([n], [at('10.20.0.5', '0a:76:66:00:00:99')])[0].drift).toMatch(/reports no address/);
  });

  test('a host serves a network only with networking on, and with the uplink that carries it', () => {
    expect(cannotServe(undefined, { network: 'lab' })).toMatch(/^serves no networks/);
    expect(cannotServe({ uplinks: [] }, { network: 'lab' })).toBeUndefined();
    expect(cannotServe({ uplinks: ['eth0'] }, { network: 'office', uplink: 'eth1' })).toBe(
      'has no uplink eth1 for network office (its uplinks: eth0)',
    );
  });
});
