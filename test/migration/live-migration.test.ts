import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';
import { committedMigration } from '../helpers/committed-migration';
import { waitForProgress } from '../helpers/progress';
import { vmOperations } from '../../client/vm-operations';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';

type Failure = { cause?: { type?: string; message?: string } };

describe('live migration between real QEMU hosts', () => {
  let stack: TestStack;
  let ops: ReturnType<typeof vmOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('live-migration');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    // host-c is small, so a large VM cannot move there.
    await stack.startAgent('host-c', ['--memory', '512']);
    await importGuestImage(stack.inventory, stack.config);
    ops = vmOperations(stack.client, stack.config);
    await (await ops.create({ vmId: 'mover', image: GUEST_IMAGE, host: 'host-a' })).result();
  });
  afterAll(() => stack.stop());

  async function guestsReportedBy(hostId: string): Promise<string[]> {
    const r = await stack.client.workflow.execute('checkHost', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: `host/${hostId}/check-${Date.now()}`,
      args: [{ hostId }],
    });
    return r.guests;
  }

  test('a running guest moves host-a → host-b → host-c and is verified through its guest agent and keeps its heartbeat; inventory and hosts agree', async () => {
    let seq = (await freshHeartbeat(stack.config, 'host-a', 'mover')).seq;
    for (const [from, to] of [
      ['host-a', 'host-b'],
      ['host-b', 'host-c'],
    ]) {
      const result = await committedMigration(stack.inventory, 'mover', () =>
        ops.migrate({ vmId: 'mover', to }),
      );
      expect(result).toMatchObject({ source: from, target: to });
      expect(result).toMatchObject({ verifiedBy: 'guest-agent', verifiedHeartbeatSeq: null });
      expect(hostsRunning(stack.config, 'mover')).toEqual([to]);
      const hb = await freshHeartbeat(stack.config, to, 'mover');
      // The same guest, not a new boot: its heartbeat counter carried on.
      expect(hb.seq).toBeGreaterThan(seq);
      seq = hb.seq;
      expect(await stack.inventory.vms.findOne({ _id: 'mover' })).toMatchObject({
        host: to,
        state: 'running',
        migration: null,
      });
      expect(await guestsReportedBy(to)).toEqual(['mover']);
      expect(await guestsReportedBy(from)).toEqual([]);
    }
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    const events = await stack.inventory.events
      .find({ subject: 'vm/mover', operation: 'live-migration' })
      .toArray();
    // A rolled-back attempt (committedMigration) may come between them.
    expect(events.map((e) => e.outcome).filter((o) => o !== 'rolled-back')).toEqual([
      'completed',
      'completed',
    ]);
  });

  test('with no target, placement picks an eligible host other than the source', async () => {
    const result = await committedMigration(stack.inventory, 'mover', () => ops.migrate({ vmId: 'mover' }));
    expect(result.source).toBe('host-c');
    expect(['host-a', 'host-b']).toContain(result.target);
    expect(hostsRunning(stack.config, 'mover')).toEqual([result.target]);
    await freshHeartbeat(stack.config, result.target, 'mover');
  });

  test('abort mid-transfer: the VM keeps running on the source, nothing is left on the target', async () => {
    const vm = await stack.inventory.vms.findOne({ _id: 'mover' });
    const source = vm!.host!;
    const target = source === 'host-a' ? 'host-b' : 'host-a';
    const op = await ops.migrate({ vmId: 'mover', to: target, policy: { maxBandwidthMiBps: 2 } });
    await waitForProgress(
      ops,
      'mover',
      (p) => p.phase === 'transferring' && (p.stats?.transferredBytes ?? 0) > 0,
    );
    // The migration owns the VM while it runs: its intent is on the VM before anything moved.
    expect((await stack.inventory.vms.findOne({ _id: 'mover' }))?.migration).toMatchObject({
      target,
      workflowId: 'vm/mover',
      phase: 'transferring',
    });
    expect(await ops.abortMigration('mover', 'operator changed their mind')).toMatch(/aborting/);
    const err = (await op.result().catch((e: unknown) => e)) as Failure;
    expect(err.cause?.type).toBe('MigrationAborted');
    expect(err.cause?.message).toMatch(/operator changed their mind/);

    expect(hostsRunning(stack.config, 'mover')).toEqual([source]);
    await freshHeartbeat(stack.config, source, 'mover');
    expect(await stack.inventory.vms.findOne({ _id: 'mover' })).toMatchObject({
      host: source,
      state: 'running',
      migration: null,
    });
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    const last = await stack.inventory.events.find({ subject: 'vm/mover' }).sort({ at: -1 }).limit(1).next();
    expect(last).toMatchObject({ operation: 'live-migration', outcome: 'rolled-back' });
  });

  test('controls are validated: abort of an idle VM, a bad bandwidth and a post-copy force without post-copy are refused', async () => {
    await expect(ops.abortMigration('mover')).rejects.toThrow(/vm mover has no migration running/);
    const vm = await stack.inventory.vms.findOne({ _id: 'mover' });
    const target = vm!.host === 'host-a' ? 'host-b' : 'host-a';
    const op = await ops.migrate({ vmId: 'mover', to: target, policy: { maxBandwidthMiBps: 4 } });
    await waitForProgress(ops, 'mover', (p) => p.phase === 'transferring');
    await expect(ops.setMaxBandwidth('mover', 0)).rejects.toThrow(
      /maxBandwidthMiBps: must be at least 1 MiB\/s/,
    );
    await expect(ops.forceCompleteMigration('mover', { mode: 'post-copy' })).rejects.toThrow(
      /post-copy was not enabled/,
    );
    // Raising the bandwidth lets it finish quickly.
    expect(await ops.setMaxBandwidth('mover', 1024)).toMatch(/1024 MiB\/s/);
    const result = await committedMigration(stack.inventory, 'mover', async (attempt) =>
      attempt === 1 ? op : ops.migrate({ vmId: 'mover', to: target }),
    );
    expect(result.target).toBe(target);
    expect(hostsRunning(stack.config, 'mover')).toEqual([target]);
  });

  test('a concurrent migration of the same VM is busy; a target without capacity is rejected with its reason', async () => {
    const vm = await stack.inventory.vms.findOne({ _id: 'mover' });
    const target = vm!.host === 'host-a' ? 'host-b' : 'host-a';
    const op = await ops.migrate({ vmId: 'mover', to: target, policy: { maxBandwidthMiBps: 64 } });
    await expect(ops.migrate({ vmId: 'mover', to: 'host-c' })).rejects.toThrow(/^VM busy: liveMigration/);
    await committedMigration(stack.inventory, 'mover', async (attempt) =>
      attempt === 1 ? op : ops.migrate({ vmId: 'mover', to: target }),
    );

    await (await ops.create({ vmId: 'bulky', image: GUEST_IMAGE, memoryMiB: 1024, host: 'host-a' })).result();
    const err = (await (
      await ops.migrate({ vmId: 'bulky', to: 'host-c' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(err.cause?.type).toBe('InsufficientCapacityError');
    expect(err.cause?.message).toMatch(/host-c: needs 1024 MiB memory, 512 MiB free/);
    const same = (await (
      await ops.migrate({ vmId: 'bulky', to: 'host-a' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(same.cause?.type).toBe('SameHostError');
    expect(hostsRunning(stack.config, 'bulky')).toEqual(['host-a']);
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    await (await ops.delete({ vmId: 'bulky', gracefulTimeoutSec: 0 })).result();
  });

  test("a target that cannot present the VM's CPU model is refused by name before anything moves", async () => {
    const vm = (await stack.inventory.vms.findOne({ _id: 'mover' }))!;
    const target = vm.host === 'host-a' ? 'host-b' : 'host-a';
    // As if the VM had been created in a cluster whose baseline is SandyBridge, which TCG cannot present.
    await stack.inventory.vms.updateOne({ _id: 'mover' }, { $set: { 'guest.cpuModel': 'SandyBridge' } });
    try {
      const err = (await (
        await ops.migrate({ vmId: 'mover', to: target })
      )
        .result()
        .catch((e: unknown) => e)) as Failure;
      expect(err.cause?.type).toBe('IncompatibleHostError');
      expect(err.cause?.message).toMatch(
        new RegExp(
          `target ${target} is incompatible: cannot present CPU model SandyBridge \\(it presents qemu64, Nehalem`,
        ),
      );
      expect(hostsRunning(stack.config, 'mover')).toEqual([vm.host]);
    } finally {
      await stack.inventory.vms.updateOne({ _id: 'mover' }, { $set: { 'guest.cpuModel': 'qemu64' } });
    }
  });
});
