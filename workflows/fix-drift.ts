import { ApplicationFailure, executeChild, ParentClosePolicy, patched } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DriftDoc } from '../inventory/schemas';
import { isSimHost, vmIdOfDiskName } from '../domain/names';
import { inventory, onHost } from './activity-proxies';
import { trackOperation } from './observability';

/** An operator's fix is worth the usual retries. */
const act = (hostId: string) => onHost(hostId, { scheduleToStartTimeout: '30 seconds' });

/** Runs fixes as the VM's own workflow (runs begun earlier fixed from `drift/<id>` directly). */
const FIX_AS_VM = 'fix-drift-as-vm';

/** The VM a finding is about: `vm/<id>`, `host/<h>/qemu/<id>`, or a disk named for the VM. */
function vmOfDrift(d: DriftDoc): string | undefined {
  if (d.subject.startsWith('disk/')) return vmIdOfDiskName(d.subject.split('/').pop()!);
  if (d.subject.startsWith('vm/') || d.subject.includes('/qemu/')) return d.subject.split('/').pop();
  return undefined;
}

function refuse(message: string): never {
  throw ApplicationFailure.nonRetryable(message, 'InvalidStateError');
}

/**
 * Applies the fix an operator chose for an open drift (`drift/<id>`). A finding about a VM is
 * fixed by `fixVmDrift` running as `vm/<id>`, so no other operation on the VM races the fix.
 */
export async function fixDrift(req: { id: string }): Promise<string> {
  const d = await inventory.readDrift(req);
  const op = trackOperation({ operation: 'fix-drift', hosts: d.hostId ? [d.hostId] : [] });
  if (d.state !== 'open') refuse(`drift ${d._id} is ${d.state}: nothing to fix`);
  const vmId = vmOfDrift(d);
  if (patched(FIX_AS_VM) && vmId) {
    try {
      return await executeChild(fixVmDrift, {
        workflowId: `vm/${vmId}`,
        args: [{ id: d._id }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError)
        refuse(`vm ${vmId} is busy with another operation; fix drift ${d._id} once it has finished`);
      throw err;
    }
  }
  return applyFix(d, vmId ?? d.subject.split('/').pop()!, op);
}

/**
 * Fixes a finding about one VM while holding `vm/<id>`. The finding is derived again first,
 * from the inventory and the host as they are now: one that no longer holds changes nothing.
 */
export async function fixVmDrift(req: { id: string }): Promise<string> {
  const d = await inventory.readDrift(req);
  const vmId = vmOfDrift(d)!;
  const op = trackOperation({ operation: 'fix-drift', vm: vmId, hosts: d.hostId ? [d.hostId] : [] });
  if (d.state !== 'open') refuse(`drift ${d._id} is ${d.state}: nothing to fix`);
  if (d.kind === 'unfinished-migration') return settleMigration(d, vmId, op);
  const hostStatus =
    d.hostId && (d.kind === 'orphan-process' || d.kind === 'duplicate-vm')
      ? (await act(d.hostId).guestStatus({ vmId })).status
      : undefined;
  const gone = await inventory.driftGone({ id: d._id, hostStatus });
  if (gone) {
    await inventory.markDriftResolved({ id: d._id, why: gone });
    return `nothing done: ${gone}`;
  }
  return applyFix(d, vmId, op);
}

type Operation = ReturnType<typeof trackOperation>;

async function applyFix(d: DriftDoc, vmId: string, op: Operation): Promise<string> {
  let how: string;
  switch (d.kind) {
    case 'orphan-process':
    case 'duplicate-vm':
      op.phase('fixing', `stopping the unrecorded QEMU of ${vmId} on ${d.hostId}`);
      await act(d.hostId!).destroyGuest({ vmId });
      how = `stopped the QEMU of ${vmId} on ${d.hostId} (by an operator)`;
      break;
    case 'orphan-disk': {
      const hostId = (await inventory.reconcilableHosts()).find((h) => !isSimHost(h));
      if (!hostId) refuse('no QEMU host is up to delete the disk');
      op.phase('fixing', `deleting ${d.subject}`);
      // `<vm>.qcow2` or a data disk `<vm>.data<i>.qcow2`: nothing owns the VM, so all its files go.
      await act(hostId).deleteDisk({ vmId });
      how = `deleted ${d.subject.slice('disk/'.length)} (by an operator)`;
      break;
    }
    default:
      refuse(`drift of kind ${d.kind} is not fixed by \`audit fix\`: ${d.fix}`);
  }
  await inventory.markDriftFixed({ id: d._id, how });
  op.phase('done', how);
  return how;
}

/**
 * A migration that ended without settling: both hosts are asked what they run, and the VM is
 * recorded where exactly one copy runs. Two running copies, or an intent that changed since,
 * are refused: that is for an operator's hands.
 */
async function settleMigration(d: DriftDoc, vmId: string, op: Operation): Promise<string> {
  const intent = await inventory.readMigrationIntent({ vmId });
  if (!intent) {
    await inventory.markDriftResolved({ id: d._id, why: `vm ${vmId} has no migration intent any more` });
    return 'nothing done: the migration settled since';
  }
  op.hosts([intent.source, intent.target]);
  op.phase('fixing', `asking ${intent.source} and ${intent.target} which runs ${vmId}`);
  const [source, target] = await Promise.all([
    act(intent.source).guestStatus({ vmId }),
    act(intent.target).guestStatus({ vmId }),
  ]);
  for (const [host, s] of [
    [intent.source, source],
    [intent.target, target],
  ] as const)
    if (s.status === 'unknown')
      refuse(`QEMU of ${vmId} on ${host} does not say whether it runs: settle it by hand`);
  const how = await inventory.settleMigrationIntent({
    vmId,
    runId: intent.runId,
    sourceRunning: source.running,
    targetRunning: target.running,
  });
  await inventory.markDriftFixed({ id: d._id, how });
  op.phase('done', how);
  return how;
}
