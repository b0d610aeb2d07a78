import {
  condition,
  executeChild,
  log,
  ParentClosePolicy,
  patched,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { EnterMaintenanceRequest } from '../domain/maintenance';
import { workflowIds } from '../domain/names';
import { inventory } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { liveMigration } from './live-migration';
import { resolveBlocked } from './maintenance-control';
import { trackOperation, type Operation } from './observability';
import { stopVm } from './stop-vm';

/** How often an evacuation waits 5 s for a VM busy with another operation before giving up on it. */
const BUSY_WAITS = 60;

/**
 * How often an evacuation waits 15 s for a target whose agent looked lost (its pre-check said
 * TargetUnavailableError: an agent restarting, say) when no other host can take the VM, before
 * the host blocks for an operator. Five minutes: an agent restart takes seconds; a lost host is
 * HA's business, and the operator then sees the block.
 */
const UNAVAILABLE_WAITS = 20;
/** Runs from before this wait went straight to `blocked`; they replay as they ran. */
const WAIT_FOR_UNAVAILABLE_TARGETS = 'evacuation-waits-for-unavailable-targets';

export interface MaintenanceResult {
  hostId: string;
  moved: { vmId: string; to: string }[];
  stopped: string[];
  /** VMs that were not running: they stay recorded on the host. */
  notRunning: string[];
}

/**
 * Puts a host into maintenance (`host/<hostId>`): placement skips it at once, then every running
 * VM is live-migrated off as a child workflow, at most `maxParallel` at a time and at most
 * `maxInboundPerHost` into any target, never onto a host in maintenance. A VM whose migrations
 * all fail is never stopped silently: by policy the host waits, visibly `blocked`, for an
 * operator (`resolveBlocked`), or the VM is stopped and reported.
 */
export async function enterMaintenance(request: EnterMaintenanceRequest): Promise<MaintenanceResult> {
  const op = trackOperation({ operation: 'enter-maintenance', hosts: [request.hostId] });
  return evacuateHost(op, request);
}

/** The steps of entering maintenance, shared by every `host/<hostId>` workflow that needs them. */
export async function evacuateHost(
  op: Operation,
  request: EnterMaintenanceRequest,
): Promise<MaintenanceResult> {
  const maxParallel = request.maxParallel ?? 2;
  const maxInbound = request.maxInboundPerHost ?? 2;
  const retries = request.retriesPerVm ?? 2;
  let onUnmovable = request.onUnmovable ?? 'block';
  let operatorSaid: 'retry' | 'stop-them' | undefined;
  let blocked: { vmId: string; reason: string }[] = [];
  setHandler(
    resolveBlocked,
    async ({ action }) => {
      operatorSaid = action;
      return `${action} for ${blocked.map((b) => b.vmId).join(', ')}`;
    },
    {
      validator: ({ action }) => {
        if (!['retry', 'stop-them'].includes(action)) throw new Error('action: must be retry or stop-them');
        if (blocked.length === 0) throw new Error(`host ${request.hostId} is not blocked`);
      },
    },
  );

  let vms;
  try {
    op.phase('marking', `marking ${request.hostId} so placement skips it`);
    vms = await inventory.beginMaintenance(request);
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
  const moved: { vmId: string; to: string }[] = [];
  const stopped: string[] = [];
  const inbound = new Map<string, number>();

  /** Moves one VM, trying other targets after a failure; returns why it could not, if so. */
  const evacuate = async (vmId: string): Promise<string | null> => {
    const failedTargets: string[] = [];
    /** Targets whose agent looked lost: excluded until the next wait for them. */
    const unavailable: string[] = [];
    let lastReason = '';
    let busyWaits = 0;
    let unavailableWaits = 0;
    for (let attempt = 0; attempt <= retries; attempt++) {
      let target: string;
      try {
        // Wait for a target with an inbound slot; hosts at their limit count as excluded meanwhile.
        const full = () => [...inbound].filter(([, n]) => n >= maxInbound).map(([h]) => h);
        const choice = await inventory.chooseEvacuationTarget({
          vmId,
          from: request.hostId,
          exclude: [...failedTargets, ...unavailable, ...full()],
          preferPatchLevel: request.preferPatchLevel,
        });
        if ('gone' in choice) {
          // Another operation moved, stopped or deleted it meanwhile: nothing of it is left to move.
          log.info('vm left the host on its own', { vmId, why: choice.gone });
          return null;
        }
        target = choice.target;
      } catch (err) {
        if ([...inbound.values()].some((n) => n >= maxInbound)) {
          await condition(() => [...inbound.values()].every((n) => n < maxInbound));
          attempt--;
          continue;
        }
        if (
          unavailable.length &&
          unavailableWaits < UNAVAILABLE_WAITS &&
          patched(WAIT_FOR_UNAVAILABLE_TARGETS)
        ) {
          unavailableWaits++;
          op.phase(
            'evacuating',
            `no other host can take ${vmId}; waiting for ${unavailable.join(', ')}, whose agent looked lost, to come back`,
          );
          await sleep('15 seconds');
          unavailable.length = 0;
          attempt--;
          continue;
        }
        return reasonOf(err);
      }
      inbound.set(target, (inbound.get(target) ?? 0) + 1);
      try {
        await executeChild(liveMigration, {
          workflowId: workflowIds.vm(vmId),
          args: [{ vmId, to: target, policy: request.migration }],
          // Terminating the maintenance must not cut a migration off: it is asked to cancel, and rolls back.
          parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          staticSummary: `Evacuate VM ${vmId} from ${request.hostId} to ${target}`,
        });
        moved.push({ vmId, to: target });
        return null;
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError && busyWaits++ < BUSY_WAITS) {
          // The VM is busy with another operation (`vm/<id>`): not the target's fault. Wait, ask again.
          op.phase('evacuating', `${vmId} is busy with another operation; waiting to move it`);
          await sleep('5 seconds');
          attempt--;
          continue;
        }
        lastReason =
          err instanceof WorkflowExecutionAlreadyStartedError
            ? `vm ${vmId} stayed busy with another operation for ${(BUSY_WAITS * 5) / 60} minutes`
            : reasonOf((err as { cause?: unknown }).cause ?? err);
        log.warn('evacuation attempt failed', { vmId, target, reason: lastReason });
        const type = (err as { cause?: { type?: string } }).cause?.type;
        (type === 'TargetUnavailableError' ? unavailable : failedTargets).push(target);
      } finally {
        inbound.set(target, (inbound.get(target) ?? 1) - 1);
      }
    }
    return lastReason || 'no target could take it';
  };

  const evacuateAll = async (ids: string[]) => {
    const queue = [...ids];
    const failures: { vmId: string; reason: string }[] = [];
    const lane = async () => {
      for (let vmId = queue.shift(); vmId; vmId = queue.shift()) {
        op.phase(
          'evacuating',
          `moving ${vmId} off ${request.hostId} (${moved.length} moved, ${queue.length} waiting)`,
        );
        const reason = await evacuate(vmId);
        if (reason) failures.push({ vmId, reason });
      }
    };
    await Promise.all(Array.from({ length: Math.min(maxParallel, ids.length) }, lane));
    return failures;
  };

  let notRunning = vms.stopped;
  try {
    let remaining = vms.running;
    for (;;) {
      const failures = await evacuateAll(remaining);
      if (failures.length === 0) {
        // A migration that chose this host before it was marked may have landed since: move those too.
        const now = await inventory.vmsOn({ hostId: request.hostId });
        notRunning = now.stopped;
        remaining = now.running;
        if (remaining.length === 0) break;
        continue;
      }
      if (onUnmovable === 'stop') {
        for (const f of failures) {
          op.phase(
            'stopping',
            `stopping ${f.vmId}, which could not be moved (${f.reason}), as the policy allows`,
          );
          await executeChild(stopVm, {
            workflowId: workflowIds.vm(f.vmId),
            args: [{ vmId: f.vmId, gracefulTimeoutSec: 30 }],
            parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
          });
          stopped.push(f.vmId);
        }
        break;
      }
      // Forget any earlier answer before the host can be seen blocked: an answer that arrives
      // while the blocked state is being recorded must count, not be overwritten after it.
      operatorSaid = undefined;
      blocked = failures;
      const reason = failures.map((f) => `${f.vmId}: ${f.reason}`).join('; ');
      op.phase('blocked', `waiting for an operator: ${reason}`);
      await inventory.setMaintenanceState({ hostId: request.hostId, state: 'blocked', reason });
      await condition(() => operatorSaid !== undefined);
      if (operatorSaid === 'stop-them') onUnmovable = 'stop';
      remaining = failures.map((f) => f.vmId);
      blocked = [];
      await inventory.setMaintenanceState({ hostId: request.hostId, state: 'entering' });
    }
    await inventory.setMaintenanceState({
      hostId: request.hostId,
      state: 'in-maintenance',
      evacuatedVms: moved.map((m) => m.vmId),
    });
  } catch (err) {
    op.phase('failed', reasonOf(err));
    throw operatorFailure(err);
  }
  op.phase('done', `${request.hostId} is in maintenance: ${moved.length} moved, ${stopped.length} stopped`);
  return { hostId: request.hostId, moved, stopped, notRunning };
}
