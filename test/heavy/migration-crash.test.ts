import { TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';
import { waitForProgress } from '../helpers/progress';
import { vmOperations } from '../../client/vm-operations';

/** Exactly one running copy, on the host the inventory names, and no capacity left claimed. */
async function expectConsistent(stack: TestStack, vmId: string): Promise<string> {
  const vm = await stack.inventory.vms.findOne({ _id: vmId });
  expect(vm?.state).toBe('running');
  expect(hostsRunning(stack.config, vmId)).toEqual([vm!.host]);
  await freshHeartbeat(stack.config, vm!.host!, vmId);
  expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
  return vm!.host!;
}

describe('live migration survives crashes and cancellation', () => {
  let stack: TestStack;
  let ops: ReturnType<typeof vmOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('migration-crash');
    await stack.startControllerProcess();
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    ops = vmOperations(stack.client, stack.config);
    await (await ops.create({ vmId: 'survivor', image: GUEST_IMAGE, host: 'host-a' })).result();
  });
  afterAll(() => stack.stop());

  test('kill -9 of the controller worker mid-transfer: once it is back, the migration finishes cleanly', async () => {
    const op = await ops.migrate({ vmId: 'survivor', to: 'host-b', policy: { maxBandwidthMiBps: 4 } });
    await waitForProgress(
      ops,
      'survivor',
      (p) => p.phase === 'transferring' && (p.stats?.transferredBytes ?? 0) > 0,
    );
    stack.controllerProcess!.child.kill('SIGKILL');
    await stack.controllerProcess!.waitForExit();
    // The transfer goes on in QEMU and the source agent while no controller runs.
    await new Promise((r) => setTimeout(r, 3000));
    await stack.startControllerProcess();
    const result = await op.result();
    expect(result.target).toBe('host-b');
    expect(await expectConsistent(stack, 'survivor')).toBe('host-b');
  });

  test('kill -9 of the source agent mid-transfer: the restarted agent re-attaches and the migration ends cleanly', async () => {
    const op = await ops.migrate({ vmId: 'survivor', to: 'host-a', policy: { maxBandwidthMiBps: 4 } });
    await waitForProgress(
      ops,
      'survivor',
      (p) => p.phase === 'transferring' && (p.stats?.transferredBytes ?? 0) > 0,
    );
    const agent = stack.agents.get('host-b')!;
    agent.process.child.kill('SIGKILL');
    await agent.process.waitForExit();
    await stack.startAgent('host-b', ['--memory', '4096']);
    await op.result().catch(() => undefined); // committed or rolled back: both are clean outcomes
    await expectConsistent(stack, 'survivor');
  });

  test('cancelling the workflow behaves like abort: the VM stays where it was', async () => {
    const source = (await stack.inventory.vms.findOne({ _id: 'survivor' }))!.host!;
    const target = source === 'host-a' ? 'host-b' : 'host-a';
    const op = await ops.migrate({ vmId: 'survivor', to: target, policy: { maxBandwidthMiBps: 2 } });
    await waitForProgress(
      ops,
      'survivor',
      (p) => p.phase === 'transferring' && (p.stats?.transferredBytes ?? 0) > 0,
    );
    await op.handle.cancel();
    await expect(op.result()).rejects.toThrow();
    expect(await expectConsistent(stack, 'survivor')).toBe(source);
    const last = await stack.inventory.events
      .find({ subject: 'vm/survivor' })
      .sort({ at: -1 })
      .limit(1)
      .next();
    expect(last).toMatchObject({ operation: 'live-migration', outcome: 'rolled-back' });
  });
});
