import { execFileSync } from 'node:child_process';
import { backupOperations } from '../../client/backup-operations';
import { vmOperations } from '../../client/vm-operations';
import { diskWriter } from '../../scripts/guest/workloads';
import { TestStack } from '../helpers/test-stack';
import { GUEST_IMAGE, importGuestImage } from '../helpers/guests';

/** A backup survives its controller: the crash half of test/backups/backup-restore.test.ts. */
describe('a backup survives kill -9 of the controller', () => {
  let stack: TestStack;
  let backups: ReturnType<typeof backupOperations>;

  beforeAll(async () => {
    stack = await TestStack.create('backup-crash');
    await stack.startControllerProcess();
    await stack.startAgents(['host-a'], ['--memory', '4096']);
    await importGuestImage(stack.inventory, stack.config);
    backups = backupOperations(stack.client, stack.config);
    // The guest writes a block to its disk every second.
    const vms = vmOperations(stack.client, stack.config);
    await (
      await vms.create({ vmId: 'db', image: GUEST_IMAGE, host: 'host-a', userData: diskWriter })
    ).result();
  });
  afterAll(() => stack.stop());

  test('kill -9 of the controller mid-backup: the run completes, and nothing half-written is catalogued as good', async () => {
    const op = await backups.run({ vmId: 'db', full: true, maxSpeedMiBps: 8 });
    for (let i = 0; i < 100; i++) {
      if (await stack.inventory.backups.findOne({ state: 'running' })) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    stack.controllerProcess!.child.kill('SIGKILL');
    await stack.controllerProcess!.waitForExit();
    expect(await stack.inventory.backups.countDocuments({ state: 'running' })).toBe(1);
    await new Promise((r) => setTimeout(r, 2000));
    await stack.startControllerProcess();
    const result = await op.result().catch((e: { cause?: Error }) => {
      throw new Error(`backup failed: ${e.cause?.message}`);
    });
    expect(result.kind).toBe('full');
    const doc = await stack.inventory.backups.findOne({ _id: result.backupId });
    expect(doc).toMatchObject({ state: 'good', sha256: result.sha256 });
    expect(await stack.inventory.backups.countDocuments({ state: 'running' })).toBe(0);
    execFileSync('qemu-img', ['check', '-q', result.path]);
  });
});
