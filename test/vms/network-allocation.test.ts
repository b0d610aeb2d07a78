import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { openInventory, type Inventory } from '../../inventory/db';
import {
  allocateAddress,
  allocateMac,
  createNetwork,
  deleteNetwork,
  releaseNicClaims,
} from '../../inventory/networks';
import { fileConfig } from '../helpers/test-stack';

/** Networks in the inventory, on FerretDB: names, subnets, addresses and MACs each go to one owner. */
describe('network addresses and MACs, arbitrated on FerretDB', () => {
  const { config, env } = fileConfig('network-allocation');
  let inv: Inventory;
  /** The `virtflow` command itself, on this file's database: exit status, output and error. */
  const virtflow = (...args: string[]) =>
    promisify(execFile)(process.execPath, [path.join(__dirname, '../../bin/virtflow.js'), ...args], {
      env,
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        stdout: e.stdout,
        stderr: e.stderr,
      }),
    );

  beforeAll(async () => {
    const stale = await openInventory(config);
    await stale.db.dropDatabase();
    await stale.close();
    inv = await openInventory(config);
    await createNetwork(inv, { name: 'lab', cidr: '10.20.0.0/24', gateway: '10.20.0.1' });
    await createNetwork(inv, {
      name: 'small',
      cidr: '10.30.0.0/24',
      pool: { first: '10.30.0.10', last: '10.30.0.17' },
    });
  });
  afterAll(() => inv.close());

  test('a network that overlaps another or reuses its name is refused, naming the field', async () => {
    await expect(createNetwork(inv, { name: 'wide', cidr: '10.0.0.0/8' })).rejects.toThrow(
      /^cidr: 10\.0\.0\.0\/8 overlaps 10\.20\.0\.0\/24 of network lab/,
    );
    await expect(createNetwork(inv, { name: 'lab', cidr: '10.40.0.0/24' })).rejects.toThrow(
      /^name: network lab exists/,
    );
    expect(await inv.networks.countDocuments({})).toBe(2);
  });

  test('10 concurrent creates of overlapping networks: exactly one is recorded, the others refused naming cidr', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => createNetwork(inv, { name: `race-${i}`, cidr: '10.90.0.0/16' })),
    );
    const made = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value._id] : []));
    expect(made).toHaveLength(1);
    for (const o of outcomes)
      if (o.status === 'rejected')
        expect((o.reason as Error).message).toMatch(
          /^cidr: 10\.90\.0\.0\/16 overlaps 10\.90\.0\.0\/16 of network race-\d$/,
        );
    expect(
      await inv.networks.countDocuments({ _id: { $in: Array.from({ length: 10 }, (_, i) => `race-${i}`) } }),
    ).toBe(1);
    expect(await inv.leases.countDocuments({})).toBe(0);
    await deleteNetwork(inv, made[0]);
  });

  test('20 concurrent VMs on a pool of 8 addresses: exactly 8 get one, each a different one', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => allocateAddress(inv, { network: 'small', vmId: `vm-${i}` })),
    );
    const got = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    expect(got).toHaveLength(8);
    expect(new Set(got).size).toBe(8);
    expect(got.every((ip) => /^10\.30\.0\.1[0-7]$/.test(ip))).toBe(true);
    const refusals = outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as Error).message] : []));
    expect(refusals).toHaveLength(12);
    for (const r of refusals)
      expect(r).toMatch(
        /^ip: network small has no free address \(pool 10\.30\.0\.10-10\.30\.0\.17, 8 in use\)/,
      );
    expect(await inv.nicClaims.countDocuments({ network: 'small' })).toBe(8);
  });

  test('a requested address is refused when taken, outside the pool or the gateway; a retry finds its own', async () => {
    expect(await allocateAddress(inv, { network: 'lab', vmId: 'web', requested: '10.20.0.15' })).toBe(
      '10.20.0.15',
    );
    expect(await allocateAddress(inv, { network: 'lab', vmId: 'web', requested: '10.20.0.15' })).toBe(
      '10.20.0.15',
    );
    await expect(
      allocateAddress(inv, { network: 'lab', vmId: 'db', requested: '10.20.0.15' }),
    ).rejects.toThrow(/^ip: 10\.20\.0\.15 on network lab is taken by vm web/);
    await expect(
      allocateAddress(inv, { network: 'lab', vmId: 'db', requested: '10.20.1.15' }),
    ).rejects.toThrow(
      /^ip: 10\.20\.1\.15 is outside the pool of network lab \(10\.20\.0\.1-10\.20\.0\.254\)/,
    );
    await expect(
      allocateAddress(inv, { network: 'lab', vmId: 'db', requested: '10.20.0.1' }),
    ).rejects.toThrow(/^ip: 10\.20\.0\.1 is the gateway of network lab/);
    // Without a request, the lowest free address that is not the gateway.
    expect(await allocateAddress(inv, { network: 'lab', vmId: 'db' })).toBe('10.20.0.2');
  });

  test('MACs are unique across 50 concurrent NICs, and a network in use cannot be deleted', async () => {
    const macs = await Promise.all(
      Array.from({ length: 50 }, (_, i) => allocateMac(inv, { network: 'lab', vmId: `nic-${i}` })),
    );
    expect(new Set(macs).size).toBe(50);
    expect(macs.every((m) => m.startsWith('0a:76:66:'))).toBe(true);

    await expect(deleteNetwork(inv, 'lab')).rejects.toThrow(/^network lab is in use by vm db, nic-0, nic-1/);
    for (const vmId of ['web', 'db', ...Array.from({ length: 50 }, (_, i) => `nic-${i}`)])
      await releaseNicClaims(inv, vmId);
    await deleteNetwork(inv, 'lab');
    expect(await inv.networks.findOne({ _id: 'lab' })).toBeNull();
  });

  test('`virtflow network` creates, lists and shows networks, and refuses bad input before recording anything', async () => {
    const created = await virtflow(
      'network',
      'create',
      'office',
      '--cidr',
      '10.50.0.0/24',
      '--vlan',
      '42',
      '--uplink',
      'eth1',
      '--gateway',
      '10.50.0.1',
      '--pool',
      '10.50.0.100-10.50.0.199',
      '--dns',
      '10.50.0.1',
      '--json',
    );
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout).spec).toMatchObject({ kind: 'vlan', vlanId: 42, uplink: 'eth1' });
    const createBad = (...flags: string[]) => virtflow('network', 'create', 'bad', '--cidr', ...flags);
    const refused = [
      await createBad('10.60.0.7/24'),
      await createBad('10.60.0.0/24', '--vlan', '5000', '--uplink', 'eth1'),
      await createBad('10.60.0.0/24', '--gateway', '10.61.0.1'),
      await createBad('10.60.0.0/24', '--vlan', '7', '--uplink', 'eth1;reboot'),
    ];
    expect(refused.map((r) => r.code)).toEqual([1, 1, 1, 1]);
    // `virtflow: error: <field>: <reason>`
    const fields = refused.map((r) => /^virtflow: error: ([^:]+):/.exec(r.stderr)?.[1]);
    expect(fields).toEqual(['cidr', 'vlanId', 'gateway', 'uplink']);
    expect(await inv.networks.findOne({ _id: 'bad' })).toBeNull();

    await allocateAddress(inv, { network: 'office', vmId: 'app' });
    const shown = await virtflow('network', 'show', 'office', '--json');
    expect(JSON.parse(shown.stdout).addresses).toEqual([{ address: '10.50.0.100', vm: 'app' }]);
    const listed = await virtflow('network', 'list');
    expect(listed.stdout).toMatch(
      /office\s+vlan 42 on eth1\s+10\.50\.0\.0\/24\s+10\.50\.0\.1\s+10\.50\.0\.100-10\.50\.0\.199/,
    );
    const inUse = await virtflow('network', 'delete', 'office');
    expect(inUse.stderr).toMatch(/network office is in use by vm app/);
  });
});
