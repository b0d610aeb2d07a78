import type { MigrationProgress } from '../../workflows/migration-control';
import type { vmOperations } from '../../client/vm-operations';

/** Polls a VM operation's `progress` query until `until` holds. */
export async function waitForProgress(
  ops: ReturnType<typeof vmOperations>,
  vmId: string,
  until: (p: MigrationProgress) => boolean,
  timeoutMs = 60_000,
): Promise<MigrationProgress> {
  const deadline = Date.now() + timeoutMs;
  let last: MigrationProgress | undefined;
  while (Date.now() < deadline) {
    last = await ops.progress(vmId).catch(() => last);
    if (last && until(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `progress of ${vmId} did not reach the expected state within ${timeoutMs} ms: ${JSON.stringify(last)}`,
  );
}
