import { rolloutOperations } from '../../client/rollout-operations';
import { hostOperations } from '../../client/host-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { importGuestImage } from '../helpers/guests';
import { until } from '../helpers/until';

/**
 * A rollout whose patch fails on one host, on real QEMU hosts (`npm test` covers a clean rollout
 * in test/maintenance/rolling-patch.test.ts, and the halt's branches against mocked activities in
 * test/workflows/rolling-patch.test.ts).
 */
describe('a rolling patch that fails on one host', () => {
  let stack: TestStack;
  let rollouts: ReturnType<typeof rolloutOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('rolling-patch-failures');
    await stack.startController(await bundleWorkflows());
    for (const h of ['host-a', 'host-b', 'host-c'])
      await stack.startAgent(h, ['--memory', '4096'], {}, { supervised: true });
    await importGuestImage(stack.inventory, stack.config);
    rollouts = rolloutOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  test('a patch failing on one host is retried, halts at the budget, and resume after skipHost completes the rest', async () => {
    const op = await rollouts.start({
      name: 'dec',
      patch: 'flaky-on-host-b',
      hosts: ['host-a', 'host-b', 'host-c'],
      order: 'given',
      canaryHosts: 0,
      retriesPerHost: 1,
      retryDelaySec: 1,
      failureBudget: 0,
    });
    const halted = await until('the halt', async () => {
      const s = await rollouts.status('dec');
      return s.phase === 'halted' && s;
    });
    expect(halted.hosts.find((h) => h.hostId === 'host-b')).toMatchObject({ state: 'failed', attempts: 2 });
    expect(halted.hosts.find((h) => h.hostId === 'host-b')!.reason).toMatch(/firmware checksum mismatch/);
    expect(halted.waitingFor).toMatch(/skip or retry/);
    await expect(rollouts.resume('dec')).rejects.toThrow(/over the budget/);
    expect(await rollouts.skip('dec', 'host-b')).toBe('host-b skipped');
    await rollouts.resume('dec');
    const result = await op.result();
    expect(result.hosts.map((h) => [h.hostId, h.state])).toEqual([
      ['host-a', 'patched'],
      ['host-b', 'skipped'],
      ['host-c', 'patched'],
    ]);
    // The failed host stayed out of service, visibly, until an operator looks at it.
    expect(await stack.inventory.hosts.findOne({ _id: 'host-b' })).toMatchObject({
      maintenanceState: 'blocked',
    });
    await (await hostOperations(stack.client, stack.config).exitMaintenance({ hostId: 'host-b' })).result();
  });
});
