import { describeError } from '../../client/cli';
import type { Inventory } from '../../inventory/db';

/**
 * Runs a live migration a test needs committed, and returns its result.
 *
 * QEMU 7.2's TCG precopy can leave a busy guest's RAM wrong on its target while QMP reports
 * `completed` (docs/decisions.md): the guest then stays silent there, verification refuses the
 * commit and the migration rolls back to the source, still running. That is virtflow's promise,
 * so such an attempt is checked to have ended exactly so (the VM on its source, running, no
 * migration left on it) before the migration is tried again, up to `attempts` times. Any other
 * failure fails the test at once. `start` gets the attempt's number (a test may pass an
 * operation it already started as the first).
 */
export async function committedMigration<R>(
  inventory: Inventory,
  vmId: string,
  start: (attempt: number) => Promise<{ result(): Promise<R> }>,
  attempts = 3,
): Promise<R> {
  for (let attempt = 1; ; attempt++) {
    const before = await inventory.vms.findOne({ _id: vmId });
    try {
      return await (await start(attempt)).result();
    } catch (err) {
      if (attempt === attempts || !/did not prove it runs/.test(describeError(err))) throw err;
      const after = await inventory.vms.findOne({ _id: vmId });
      expect(after).toMatchObject({ host: before?.host, state: 'running', migration: null });
      console.log(`migration of ${vmId} rolled back after verification refused its target; again`);
    }
  }
}
