import { rolloutOperations } from '../../client/rollout-operations';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';
import { until } from '../helpers/until';

describe('rolling patches across the local hosts', () => {
  let stack: TestStack;
  let rollouts: ReturnType<typeof rolloutOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('rolling-patch');
    await stack.startController(await bundleWorkflows());
    // Two hosts are enough to prove the window: while one is out, the other takes both guests.
    for (const h of ['host-a', 'host-c'])
      await stack.startAgent(h, ['--memory', '4096'], {}, { supervised: true });
    await importGuestImage(stack.inventory, stack.config);
    const vms = vmOperations(stack.client, stack.config);
    await Promise.all([
      (await vms.create({ vmId: 'web', image: GUEST_IMAGE, host: 'host-a' })).result(),
      (await vms.create({ vmId: 'db', image: GUEST_IMAGE, host: 'host-c' })).result(),
    ]);
    rollouts = rolloutOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  test('max-unavailable 1 with guests running: every host patched, no guest stops, never two hosts out; pause holds', async () => {
    const before = new Map<string, number>();
    for (const vmId of ['web', 'db']) {
      const host = (await stack.inventory.vms.findOne({ _id: vmId }))!.host!;
      before.set(vmId, (await freshHeartbeat(stack.config, host, vmId)).seq);
    }
    const op = await rollouts.start({
      name: 'nov',
      patch: 'security-2026-11',
      hosts: ['host-a', 'host-c'],
      maxUnavailable: 1,
    });
    let maxOut = 0;
    let stoppedSeen = false;
    let finished = false;
    const watch = (async () => {
      while (!finished) {
        const hosts = await stack.inventory.hosts.find({ maintenance: true }).toArray();
        maxOut = Math.max(maxOut, hosts.length);
        const vms = await stack.inventory.vms.find({}).toArray();
        if (vms.some((v) => v.state !== 'running')) stoppedSeen = true;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    // Pause once the canary is under way: nothing new may start until resume.
    await until('the canary', async () =>
      (await rollouts.status('nov')).hosts.some((h) => h.state === 'patching'),
    );
    expect(await rollouts.pause('nov')).toMatch(/paused/);
    const paused = await until('the pause to hold', async () => {
      const s = await rollouts.status('nov');
      return s.phase === 'paused' && s;
    });
    expect(paused.hosts.filter((h) => h.state === 'patched')).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 3000));
    const still = await rollouts.status('nov');
    expect(still.hosts.filter((h) => h.state !== 'pending').map((h) => h.hostId)).toEqual(
      paused.hosts.filter((h) => h.state !== 'pending').map((h) => h.hostId),
    );
    await expect(rollouts.pause('nov')).rejects.toThrow(/already paused/);
    expect(await rollouts.resume('nov')).toBe('resumed');

    const result = await op.result();
    finished = true;
    await watch;
    expect(result.phase).toBe('done');
    expect(result.hosts.map((h) => h.state)).toEqual(['patched', 'patched']);
    for (const h of await stack.inventory.hosts.find({}).toArray()) {
      expect(h).toMatchObject({ patchLevel: '2026.11.1', maintenance: false });
    }
    expect(maxOut).toBeLessThanOrEqual(1);
    expect(stoppedSeen).toBe(false);
    for (const vmId of ['web', 'db']) {
      const host = (await stack.inventory.vms.findOne({ _id: vmId }))!.host!;
      expect(hostsRunning(stack.config, vmId)).toEqual([host]);
      expect((await freshHeartbeat(stack.config, host, vmId)).seq).toBeGreaterThan(before.get(vmId)!);
    }
  });
});
