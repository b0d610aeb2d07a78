import { placeVm, type PlacementHost } from '../../domain/placement';

const now = Date.parse('2026-11-29T12:00:00Z');

function host(id: string, over: Partial<PlacementHost> = {}): PlacementHost {
  return {
    id,
    state: 'up',
    maintenance: false,
    labels: {},
    cpuFlags: ['sse2', 'avx2'],
    qemuVersion: '7.2.22',
    heartbeatAt: new Date(now - 5_000),
    factsIntervalMs: 10_000,
    allocatable: { memoryMiB: 4096, vcpus: 16 },
    used: { memoryMiB: 0, vcpus: 0, runningVms: 0 },
    ...over,
  };
}

describe('placement', () => {
  test('chooses the host with the most memory left and says why every other host was rejected', () => {
    const decision = placeVm(
      [
        host('busy', { used: { memoryMiB: 3000, vcpus: 4, runningVms: 6 } }),
        host('roomy', { used: { memoryMiB: 512, vcpus: 1, runningVms: 1 } }),
        host('down', { state: 'down' }),
        host('stale', { heartbeatAt: new Date(now - 60_000) }),
        host('maint', { maintenance: true }),
        host('full', { used: { memoryMiB: 4000, vcpus: 1, runningVms: 1 } }),
        host('old-cpu', { cpuFlags: ['sse2'] }),
        host('other-rack', { labels: { rack: 'r2' }, used: { memoryMiB: 2000, vcpus: 1, runningVms: 1 } }),
      ],
      { memoryMiB: 256, vcpus: 1, requiredCpuFlags: ['avx2'], labels: {} },
      now,
    );
    expect(decision.chosen).toBe('roomy');
    expect(decision.ranked.map((r) => r.host)).toEqual(['roomy', 'other-rack', 'busy']);
    expect(decision.rejected).toEqual({
      down: ['host is down'],
      stale: ['agent heartbeat is 60 s old'],
      maint: ['host is in maintenance'],
      full: ['needs 256 MiB memory, 96 MiB free'],
      'old-cpu': ['CPU lacks avx2'],
    });
  });

  test("a host must present the VM's CPU model, and a live migration's target must run the same accelerator", () => {
    const hosts = [
      host('tcg-old', { accel: 'tcg', cpuModels: ['qemu64'] }),
      host('tcg-new', { accel: 'tcg', cpuModels: ['qemu64', 'Nehalem', 'Westmere'] }),
      host('kvm', { accel: 'kvm', cpuModels: ['qemu64', 'Nehalem', 'Westmere', 'SandyBridge'] }),
      // Registered before the probe: TCG with qemu64.
      host('unprobed'),
    ];
    const migration = placeVm(hosts, { memoryMiB: 128, vcpus: 1, cpuModel: 'Nehalem', accel: 'tcg' }, now);
    expect(migration.chosen).toBe('tcg-new');
    expect(migration.rejected).toEqual({
      'tcg-old': ['cannot present CPU model Nehalem (it presents qemu64)'],
      kvm: ['runs guests with kvm, the VM runs with tcg: a live migration needs the same accelerator'],
      unprobed: ['cannot present CPU model Nehalem (it presents qemu64)'],
    });
    // A fresh boot (create, HA restart) takes any accelerator, but still the VM's model.
    const boot = placeVm(hosts, { memoryMiB: 128, vcpus: 1, cpuModel: 'SandyBridge' }, now);
    expect(boot.chosen).toBe('kvm');
  });

  test('prefers fewer running VMs when free memory is equal, and breaks ties by id', () => {
    const hosts = [
      host('b', { used: { memoryMiB: 1024, vcpus: 1, runningVms: 4 } }),
      host('c', { used: { memoryMiB: 1024, vcpus: 1, runningVms: 1 } }),
      host('a', { used: { memoryMiB: 1024, vcpus: 1, runningVms: 1 } }),
    ];
    expect(placeVm(hosts, { memoryMiB: 128, vcpus: 1 }, now).ranked.map((r) => r.host)).toEqual([
      'a',
      'c',
      'b',
    ]);
  });

  test('honours labels, exclusions and the minimum QEMU version', () => {
    const hosts = [
      host('r1', { labels: { rack: 'r1' } }),
      host('r2', { labels: { rack: 'r2' }, qemuVersion: '6.2.0' }),
    ];
    expect(placeVm(hosts, { memoryMiB: 128, vcpus: 1, labels: { rack: 'r2' } }, now).rejected).toEqual({
      r1: ['labels do not match rack=r2'],
    });
    const d = placeVm(hosts, { memoryMiB: 128, vcpus: 1, minQemuVersion: '7.0', excludeHosts: ['r1'] }, now);
    expect(d.chosen).toBeNull();
    expect(d.rejected).toEqual({ r1: ['excluded by the request'], r2: ['QEMU 6.2.0 is older than 7.0'] });
  });

  test("a VM's networks need hosts that carry them: networking on, and each network's uplink", () => {
    const decision = placeVm(
      [
        host('no-networks'),
        host('no-uplink', { network: { uplinks: ['eth0'] } }),
        host('carries', { network: { uplinks: ['eth0', 'eth1'] } }),
      ],
      { memoryMiB: 256, vcpus: 1, networks: [{ network: 'lab' }, { network: 'office', uplink: 'eth1' }] },
      now,
    );
    expect(decision.chosen).toBe('carries');
    expect(decision.rejected).toEqual({
      'no-networks': ['serves no networks (its agent was started without networking), needs lab, office'],
      'no-uplink': ['has no uplink eth1 for network office (its uplinks: eth0)'],
    });
  });
});
