import { ApplicationFailure } from '@temporalio/workflow';
import type { HostCheckResult } from '../activities/controller/inventory-activities';
import { inventory, onHost } from './activity-proxies';
import { trackOperation } from './observability';

/**
 * Asks a host's agent what the host really is and runs, and records the answer in the
 * inventory. A host whose agent does not pick the task up within the bound is reported
 * unreachable rather than waited on.
 */
export async function checkHost(req: { hostId: string }): Promise<HostCheckResult> {
  const op = trackOperation({ operation: 'check-host', hosts: [req.hostId] });
  op.phase('asking-agent', `asking the agent of ${req.hostId} for its facts`);
  let report;
  try {
    report = await onHost(req.hostId, { scheduleToStartTimeout: '20 seconds' }).reportHost();
  } catch (err) {
    op.phase('unreachable', `agent of ${req.hostId} did not answer`);
    await inventory.recordHostUnreachable(req.hostId, String((err as Error).cause ?? err));
    throw ApplicationFailure.nonRetryable(
      `host ${req.hostId} did not answer: its agent is not running`,
      'HostUnreachableError',
    );
  }
  op.phase('recording', `recording ${report.guests.length} running guest(s)`);
  const result = await inventory.recordHostCheck(report);
  op.phase(
    'done',
    `${req.hostId} is up with QEMU ${report.facts.qemuVersion}, ${report.guests.length} guest(s)`,
  );
  return result;
}
