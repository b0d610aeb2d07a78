import { vmOperations } from '../../client/vm-operations';
import { freezeGuestAgent, memoryDirtier } from '../../scripts/guest/workloads';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import {
  freshHeartbeat,
  GUEST_IMAGE,
  hostsRunning,
  importGuestImage,
  waitForConsole,
} from '../helpers/guests';
import { waitForProgress } from '../helpers/progress';

type Failure = { cause?: { type?: string; message?: string } };

/**
 * Live migration beyond what `npm test` covers on real QEMU (test/migration/live-migration.test.ts):
 * a verification that fails on the target, and post-copy of a guest that dirties memory faster
 * than it is sent. The rollback's order also runs against mocked activities in
 * test/workflows/live-migration.test.ts.
 */
describe('live migration: failed verification and post-copy on real QEMU', () => {
  let stack: TestStack;
  let ops: ReturnType<typeof vmOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('migration-faults');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    ops = vmOperations(stack.client, stack.config);
    await (await ops.create({ vmId: 'mover', image: GUEST_IMAGE, host: 'host-a' })).result();
  });
  afterAll(() => stack.stop());

  test('a guest whose agent is frozen is never committed, though its console still beats: the destination is killed and the source resumed', async () => {
    // The guest stops its own agent 30 s after boot (long after its create was verified).
    await (
      await ops.create({ vmId: 'stuck', image: GUEST_IMAGE, host: 'host-a', userData: freezeGuestAgent(30) })
    ).result();
    await waitForConsole(stack.config, 'host-a', 'stuck', 'virtflow-agent-frozen vm=stuck');
    const op = await ops.migrate({ vmId: 'stuck', to: 'host-b', policy: { verifyTimeoutSec: 5 } });
    const err = (await op.result().catch((e: unknown) => e)) as Failure;
    expect(err.cause?.type).toBe('VerificationError');
    expect(err.cause?.message).toMatch(/did not prove it runs on host-b: .*guest agent did not answer/);
    expect(hostsRunning(stack.config, 'stuck')).toEqual(['host-a']);
    // Its OS runs on: a console heartbeat alone would have passed this guest.
    await freshHeartbeat(stack.config, 'host-a', 'stuck');
    expect(await stack.inventory.vms.findOne({ _id: 'stuck' })).toMatchObject({
      host: 'host-a',
      state: 'running',
    });
    expect(await stack.inventory.reservations.countDocuments({ state: 'active' })).toBe(0);
    await (await ops.delete({ vmId: 'stuck', gracefulTimeoutSec: 0 })).result();
  });

  test('post-copy moves a guest that dirties memory heavily, and it stays alive', async () => {
    await (
      await ops.create({
        vmId: 'dirty',
        image: GUEST_IMAGE,
        memoryMiB: 256,
        host: 'host-a',
        userData: memoryDirtier(48),
      })
    ).result();
    const before = await freshHeartbeat(stack.config, 'host-a', 'dirty');
    const op = await ops.migrate({
      vmId: 'dirty',
      to: 'host-b',
      policy: { postCopy: true, maxBandwidthMiBps: 16 },
    });
    await waitForProgress(ops, 'dirty', (p) => p.phase === 'transferring' && (p.stats?.iteration ?? 0) >= 1);
    expect(await ops.forceCompleteMigration('dirty', { mode: 'post-copy' })).toMatch(/post-copy/);
    const result = await op.result();
    expect(result.target).toBe('host-b');
    expect(hostsRunning(stack.config, 'dirty')).toEqual(['host-b']);
    const after = await freshHeartbeat(stack.config, 'host-b', 'dirty');
    expect(after.seq).toBeGreaterThan(before.seq);
  });
});
