import { hostOperations } from '../../client/host-operations';
import { vmOperations } from '../../client/vm-operations';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';

type Failure = { cause?: { type?: string; message?: string } };

describe('patching a host through its agent', () => {
  let stack: TestStack;
  let hosts: ReturnType<typeof hostOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('patch-host');
    await stack.startController(await bundleWorkflows());
    // Supervised, as the local stack runs them: a patch restarts the agent.
    for (const h of ['host-a', 'host-b'])
      await stack.startAgent(h, ['--memory', '4096'], {}, { supervised: true });
    await importGuestImage(stack.inventory, stack.config);
    hosts = hostOperations(stack.client, stack.config);
    await (
      await vmOperations(stack.client, stack.config).create({
        vmId: 'svc',
        image: GUEST_IMAGE,
        host: 'host-b',
      })
    ).result();
  });
  afterAll(() => stack.stop());

  test('a patch evacuates the host, runs, restarts the agent, proves QEMU with a canary and returns the host', async () => {
    const before = await stack.inventory.hosts.findOne({ _id: 'host-b' });
    const hb = await freshHeartbeat(stack.config, 'host-b', 'svc');
    const result = await (await hosts.patch({ hostId: 'host-b', patch: 'security-2026-11' })).result();
    expect(result).toMatchObject({
      outcome: 'patched',
      version: '2026.11.1',
      moved: [{ vmId: 'svc', to: 'host-a' }],
    });
    expect(result.canaryBootMs).toBeGreaterThan(0);
    const after = await stack.inventory.hosts.findOne({ _id: 'host-b' });
    expect(after).toMatchObject({
      patchLevel: '2026.11.1',
      state: 'up',
      maintenance: false,
      maintenanceState: 'none',
    });
    expect(after!.agent.pid).not.toBe(before!.agent.pid);
    // The guest never stopped: it moved and kept counting.
    expect(hostsRunning(stack.config, 'svc')).toEqual(['host-a']);
    expect((await freshHeartbeat(stack.config, 'host-a', 'svc')).seq).toBeGreaterThan(hb.seq);
    // No canary left behind.
    expect(hostsRunning(stack.config, 'svc', ['host-b'])).toEqual([]);

    const again = await (await hosts.patch({ hostId: 'host-b', patch: 'security-2026-11' })).result();
    expect(again).toMatchObject({ outcome: 'skipped', reason: 'already at 2026.11.1' });
  });

  test.each([
    [
      'a failing installer',
      'broken-driver',
      /apply of broken-driver failed: exit 1: .*missing kernel headers/,
    ],
    ['a hanging installer', 'hangs-forever', /apply of hangs-forever failed: no result within 5 s/],
  ])('%s leaves the host in maintenance, blocked, with the output', async (_what, patch, message) => {
    const err = (await (
      await hosts.patch({ hostId: 'host-b', patch })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(err.cause?.type).toBe('PatchFailedError');
    expect(err.cause?.message).toMatch(message);
    const host = await stack.inventory.hosts.findOne({ _id: 'host-b' });
    expect(host).toMatchObject({ maintenance: true, maintenanceState: 'blocked', patchLevel: '2026.11.1' });
    expect(host!.maintenanceReason).toMatch(message);
    await (await hosts.exitMaintenance({ hostId: 'host-b' })).result();
  });

  test('an unknown patch is rejected before anything changes', async () => {
    const err = (await (
      await hosts.patch({ hostId: 'host-a', patch: 'no-such-patch' })
    )
      .result()
      .catch((e: unknown) => e)) as Failure;
    expect(err.cause?.message).toMatch(/no patch named "no-such-patch"/);
    expect(await stack.inventory.hosts.findOne({ _id: 'host-a' })).toMatchObject({ maintenance: false });
  });
});
