import { rolloutOperations } from '../../client/rollout-operations';
import { TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

describe('a rollout survives its controller and can be aborted', () => {
  let stack: TestStack;
  let rollouts: ReturnType<typeof rolloutOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('rollout-crash');
    await stack.startControllerProcess();
    for (const h of ['host-a', 'host-b', 'host-c']) await stack.startAgent(h, [], {}, { supervised: true });
    rollouts = rolloutOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  test('kill -9 of the controller worker mid-rollout: it continues from where it was', async () => {
    const op = await rollouts.start({
      name: 'crash',
      patch: 'security-2026-11',
      hosts: ['host-a', 'host-b'],
      order: 'given',
    });
    await until(
      'host-a patching',
      async () => (await rollouts.status('crash')).hosts[0].state === 'patching',
    );
    stack.controllerProcess!.child.kill('SIGKILL');
    await stack.controllerProcess!.waitForExit();
    await new Promise((r) => setTimeout(r, 2000));
    await stack.startControllerProcess();
    const result = await op.result();
    expect(result.hosts.map((h) => [h.hostId, h.state, h.attempts])).toEqual([
      ['host-a', 'patched', 1],
      ['host-b', 'patched', 1],
    ]);
    for (const id of ['host-a', 'host-b']) {
      expect(await stack.inventory.hosts.findOne({ _id: id })).toMatchObject({
        patchLevel: '2026.11.1',
        maintenance: false,
      });
    }
  });

  test('abort: no new host starts, the host in progress finishes and returns to service', async () => {
    const op = await rollouts.start({
      name: 'stop-early',
      patch: 'flaky-on-host-b',
      hosts: ['host-c', 'host-a'],
      order: 'given',
    });
    await until(
      'host-c patching',
      async () => (await rollouts.status('stop-early')).hosts[0].state === 'patching',
    );
    expect(await rollouts.abort('stop-early')).toMatch(/aborting/);
    await expect(rollouts.abort('stop-early')).rejects.toThrow(/already aborted/);
    const result = await op.result();
    expect(result.phase).toBe('aborted');
    expect(result.hosts.map((h) => [h.hostId, h.state])).toEqual([
      ['host-c', 'patched'],
      ['host-a', 'pending'],
    ]);
    expect(await stack.inventory.hosts.countDocuments({ maintenance: true })).toBe(0);
  });
});
