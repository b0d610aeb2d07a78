import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, importGuestImage, qemuOn } from '../helpers/guests';
import { vmOperations } from '../../client/vm-operations';
import { isProcessRunning } from '../../hypervisor/qemu-host';

/** A guest outlives its agent: the crash half of test/vms/vm-lifecycle.test.ts. */
describe('kill -9 of a host agent', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('agent-crash');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-b'], ['--memory', '4096', '--facts-interval', '2']);
    await importGuestImage(stack.inventory, stack.config);
    const ops = vmOperations(stack.client, stack.config);
    await (await ops.create({ vmId: 'web-2', image: GUEST_IMAGE, host: 'host-b' })).result();
  });
  afterAll(() => stack.stop());

  test('kill -9 of a host agent leaves its VM running; the restarted agent re-adopts it and the inventory is unchanged', async () => {
    const before = await stack.inventory.vms.findOne({ _id: 'web-2' });
    const guest = qemuOn(stack.config, 'host-b').find('web-2')!;
    const agent = stack.agents.get('host-b')!;
    agent.process.child.kill('SIGKILL');
    await agent.process.waitForExit();

    expect(isProcessRunning(guest.pid)).toBe(true);
    const restartedAt = new Date();
    await stack.startAgent('host-b', ['--memory', '4096', '--facts-interval', '2']);
    const check = await stack.client.workflow.execute('checkHost', {
      taskQueue: 'virtflow-controller',
      workflowId: 'host/host-b/check-after-restart',
      args: [{ hostId: 'host-b' }],
    });
    expect(check.guests).toEqual(['web-2']);
    expect(qemuOn(stack.config, 'host-b').find('web-2')!.pid).toBe(guest.pid);
    await freshHeartbeat(stack.config, 'host-b', 'web-2');
    const after = await stack.inventory.vms.findOne({ _id: 'web-2' });
    expect(after).toEqual(before);
    const readopted = await stack.inventory.events.findOne({
      subject: 'host/host-b',
      operation: 'agent-start',
    });
    expect(readopted?.message).toMatch(/re-adopted 1 running guest\(s\): web-2/);

    // The re-adopted guest shows up in the operational data the new agent samples.
    let sample;
    for (let i = 0; i < 40 && !sample; i++) {
      sample = await stack.inventory.metrics.findOne({ hostId: 'host-b', at: { $gt: restartedAt } });
      if (!sample) await new Promise((r) => setTimeout(r, 250));
    }
    expect(sample?.host.runningVms).toBe(1);
    expect(sample?.vms).toEqual([
      expect.objectContaining({ vmId: 'web-2', pid: guest.pid, status: 'running', memoryMiB: 128 }),
    ]);
    expect(sample?.vms[0].heartbeatAgeSec).toBeLessThan(10);
  });
});
