import { hostOperations } from '../../client/host-operations';
import { vmOperations } from '../../client/vm-operations';
import { freezeGuestAgent } from '../../scripts/guest/workloads';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import {
  freshHeartbeat,
  GUEST_IMAGE,
  hostsRunning,
  importGuestImage,
  waitForConsole,
} from '../helpers/guests';

/**
 * A host whose VM cannot be moved, on real QEMU (`npm test` covers a clean enter and exit in
 * test/maintenance/maintenance.test.ts): every target freezes incoming guests, so each migration
 * fails its verification and the host must wait, blocked, for an operator.
 */
describe('maintenance with a VM that cannot move', () => {
  let stack: TestStack;
  let hosts: ReturnType<typeof hostOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('maintenance-blocked');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-a', 'host-b', 'host-c'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    hosts = hostOperations(stack.client, stack.config);
    const vms = vmOperations(stack.client, stack.config);
    // The guest stops its own agent 30 s after boot: every move of it fails verification.
    await (
      await vms.create({ vmId: 'app-1', image: GUEST_IMAGE, host: 'host-a', userData: freezeGuestAgent(30) })
    ).result();
    await waitForConsole(stack.config, 'host-a', 'app-1', 'virtflow-agent-frozen vm=app-1');
  });
  afterAll(() => stack.stop());

  test('a VM that cannot be moved is never stopped silently: the host waits, blocked, for an operator', async () => {
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
    // A guest whose agent is frozen cannot prove it runs on the destination: never committed.
    expect(blocked!.maintenanceReason).toMatch(
      /app-1: the guest of app-1 did not prove it runs on host-[bc]: .*guest agent did not answer/,
    );
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
  });
});
