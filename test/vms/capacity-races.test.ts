import { InsufficientCapacityError } from '../../domain/errors';
import { claimCapacity, releaseReservation } from '../../inventory/reservations';
import { registerHost } from '../../inventory/hosts';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';

describe('capacity claims under concurrency, on FerretDB', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('capacity-races');
  });
  afterAll(() => stack.stop());

  test('20 concurrent claims of 100 MiB on a host with 700 MiB: exactly 7 succeed', async () => {
    const now = new Date();
    await registerHost(stack.inventory, 'rack-1', {
      cluster: 'test',
      facts: {
        hostname: 'rack-1',
        vcpus: 64,
        memoryMiB: 700,
        cpuModel: 'x',
        cpuFlags: [],
        qemuVersion: '7.2.0',
        kernel: 'x',
      },
      allocatable: { memoryMiB: 700, vcpus: 64 },
      patchLevel: '0',
      agent: {
        version: 'x',
        pid: 1,
        startedAt: now,
        heartbeatAt: now,
        taskQueue: 'host/rack-1',
        factsIntervalMs: 10_000,
      },
      migrationPorts: { first: 50000, last: 50010 },
      migrationAddress: '127.0.0.1',
    });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        claimCapacity(stack.inventory, {
          hostId: 'rack-1',
          vmId: `vm-${i}`,
          memoryMiB: 100,
          vcpus: 1,
          owner: `op-${i}`,
        }),
      ),
    );
    const won = outcomes.filter((o) => o.status === 'fulfilled');
    const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    expect(won).toHaveLength(7);
    expect(lost).toHaveLength(13);
    for (const l of lost) expect(l.reason).toBeInstanceOf(InsufficientCapacityError);
    const active = await stack.inventory.reservations.find({ hostId: 'rack-1', state: 'active' }).toArray();
    expect(active.reduce((sum, r) => sum + r.memoryMiB, 0)).toBe(700);

    // Released capacity can be claimed again, and numbers are never reused.
    await releaseReservation(stack.inventory, active[0]._id);
    const again = await claimCapacity(stack.inventory, {
      hostId: 'rack-1',
      vmId: 'vm-x',
      memoryMiB: 100,
      vcpus: 1,
      owner: 'op-x',
    });
    expect(again.seq).toBeGreaterThan(Math.max(...active.map((r) => r.seq)));
    await expect(
      claimCapacity(stack.inventory, {
        hostId: 'rack-1',
        vmId: 'vm-y',
        memoryMiB: 100,
        vcpus: 1,
        owner: 'op-y',
      }),
    ).rejects.toThrow(/rack-1: needs 100 MiB memory, 0 MiB free/);
  });

  test('5 concurrent creates where the only host fits 2: exactly 2 VMs run, the others fail cleanly', async () => {
    await stack.inventory.hosts.deleteMany({});
    await stack.startController(await bundleWorkflows());
    await stack.startAgent('host-a', ['--memory', '256']);
    await importGuestImage(stack.inventory, stack.config);
    const ops = vmOperations(stack.client, stack.config);
    const ids = ['race-1', 'race-2', 'race-3', 'race-4', 'race-5'];
    const started = await Promise.all(
      ids.map((vmId) => ops.create({ vmId, image: GUEST_IMAGE, memoryMiB: 128 })),
    );
    const outcomes = await Promise.allSettled(started.map((op) => op.result()));

    const succeeded = ids.filter((_, i) => outcomes[i].status === 'fulfilled');
    expect(succeeded).toHaveLength(2);
    for (const o of outcomes) {
      if (o.status === 'rejected')
        expect((o.reason as { cause?: { type?: string } }).cause?.type).toBe('InsufficientCapacityError');
    }
    for (const vmId of ids) {
      expect(hostsRunning(stack.config, vmId, ['host-a'])).toEqual(
        succeeded.includes(vmId) ? ['host-a'] : [],
      );
    }
    const vms = await stack.inventory.vms.find({}).sort({ _id: 1 }).toArray();
    expect(vms.map((v) => [v._id, v.state])).toEqual(succeeded.map((id) => [id, 'running']));
    expect(await stack.inventory.reservations.countDocuments({ hostId: 'host-a', state: 'active' })).toBe(0);
  });
});
