import { hostOperations } from '../../client/host-operations';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';

type Failure = { cause?: { type?: string; message?: string } };

describe('host maintenance on real QEMU hosts', () => {
  let stack: TestStack;
  let vms: ReturnType<typeof vmOperations>;
  let hosts: ReturnType<typeof hostOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('maintenance');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(undefined, ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    vms = vmOperations(stack.client, stack.config);
    hosts = hostOperations(stack.client, stack.config);
    await Promise.all(
      ['app-1', 'app-2'].map(async (vmId) =>
        (await vms.create({ vmId, image: GUEST_IMAGE, host: 'host-a' })).result(),
      ),
    );
  });
  afterAll(() => stack.stop());

  test('a host with two running guests enters maintenance: both move and keep their heartbeats; placement skips it', async () => {
    const before = await Promise.all(
      ['app-1', 'app-2'].map((id) => freshHeartbeat(stack.config, 'host-a', id)),
    );
    const result = await (await hosts.enterMaintenance({ hostId: 'host-a' })).result();
    expect(result.moved.map((m) => m.vmId).sort()).toEqual(['app-1', 'app-2']);
    for (const [i, vmId] of ['app-1', 'app-2'].entries()) {
      const target = result.moved.find((m) => m.vmId === vmId)!.to;
      expect(target).not.toBe('host-a');
      expect(hostsRunning(stack.config, vmId)).toEqual([target]);
      expect((await freshHeartbeat(stack.config, target, vmId)).seq).toBeGreaterThan(before[i].seq);
      expect(await stack.inventory.vms.findOne({ _id: vmId })).toMatchObject({
        host: target,
        state: 'running',
      });
    }
    expect(await stack.inventory.hosts.findOne({ _id: 'host-a' })).toMatchObject({
      maintenance: true,
      maintenanceState: 'in-maintenance',
      evacuatedVms: expect.arrayContaining(['app-1', 'app-2']),
    });

    const placed = await (await vms.create({ vmId: 'newcomer', image: GUEST_IMAGE })).result();
    expect(placed.host).not.toBe('host-a');
    const refused = (await (
      await vms.create({ vmId: 'pinned', image: GUEST_IMAGE, host: 'host-a' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(refused.cause?.message).toMatch(/host-a: host is in maintenance/);
    await expect(
      hosts.enterMaintenance({ hostId: 'host-a' }).then((op) => op.result()),
    ).resolves.toMatchObject({ moved: [] });
  });

  test('exit returns the host to service and brings its VMs back', async () => {
    const result = await (await hosts.exitMaintenance({ hostId: 'host-a', migrateBack: true })).result();
    expect(result.returned.sort()).toEqual(['app-1', 'app-2']);
    expect(await stack.inventory.hosts.findOne({ _id: 'host-a' })).toMatchObject({
      maintenance: false,
      maintenanceState: 'none',
    });
    for (const vmId of ['app-1', 'app-2']) {
      expect(hostsRunning(stack.config, vmId)).toEqual(['host-a']);
      await freshHeartbeat(stack.config, 'host-a', vmId);
    }
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
  });

  test('a second operation on a host in progress is busy', async () => {
    const op = await hosts.enterMaintenance({ hostId: 'host-c' });
    await expect(hosts.exitMaintenance({ hostId: 'host-c' })).rejects.toThrow(/^host busy: enterMaintenance/);
    await op.result();
    await (await hosts.exitMaintenance({ hostId: 'host-c' })).result();
  });

  test('a VM that cannot be moved is never stopped silently: the host waits, blocked, for an operator', async () => {
    // Every target freezes incoming guests, so each migration of app-1 fails its verification.
    for (const target of ['host-b', 'host-c']) {
      await stack.agents.get(target)!.process.stop();
      await stack.startAgent(target, ['--memory', '4096'], { VIRTFLOW_FAULTS: 'freeze-incoming-guest' });
    }
    await (await vms.delete({ vmId: 'app-2', gracefulTimeoutSec: 0 })).result();
    try {
      const op = await hosts.enterMaintenance({
        hostId: 'host-a',
        retriesPerVm: 1,
        migration: { verifyTimeoutSec: 5 },
      });
      for (let i = 0; i < 240; i++) {
        if ((await stack.inventory.hosts.findOne({ _id: 'host-a' }))?.maintenanceState === 'blocked') break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const blocked = await stack.inventory.hosts.findOne({ _id: 'host-a' });
      expect(blocked).toMatchObject({ maintenance: true, maintenanceState: 'blocked' });
      expect(blocked!.maintenanceReason).toMatch(/app-1: .*heartbeat/);
      // Still running where it was: nothing was stopped behind the operator's back.
      expect(hostsRunning(stack.config, 'app-1')).toEqual(['host-a']);
      await freshHeartbeat(stack.config, 'host-a', 'app-1');

      expect(await hosts.resolveBlocked('host-a', 'stop-them')).toMatch(/stop-them for app-1/);
      const result = await op.result();
      expect(result).toMatchObject({ moved: [], stopped: ['app-1'] });
      expect(hostsRunning(stack.config, 'app-1')).toEqual([]);
      expect(await stack.inventory.vms.findOne({ _id: 'app-1' })).toMatchObject({
        state: 'stopped',
        host: 'host-a',
      });
      expect(await stack.inventory.hosts.findOne({ _id: 'host-a' })).toMatchObject({
        maintenanceState: 'in-maintenance',
      });
      await expect(hosts.resolveBlocked('host-a', 'retry')).rejects.toThrow();
    } finally {
      for (const target of ['host-b', 'host-c']) {
        await stack.agents.get(target)!.process.stop();
        await stack.startAgent(target, ['--memory', '4096']);
      }
    }
  });
});
