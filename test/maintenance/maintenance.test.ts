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
});
