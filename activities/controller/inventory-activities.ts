import type { Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { markHostUnreachable } from '../../inventory/hosts';
import type { HostReport } from '../host/contract';
import { currentRun } from './run-context';

export interface HostCheckResult {
  hostId: string;
  qemuVersion: string;
  vcpus: number;
  memoryMiB: number;
  guests: string[];
}

/** Activities that touch only MongoDB; they run on the controller worker. */
export function createInventoryActivities(inv: Inventory) {
  return {
    async recordHostCheck(report: HostReport): Promise<HostCheckResult> {
      const now = new Date();
      await inv.hosts.updateOne(
        { _id: report.hostId },
        {
          $set: {
            facts: report.facts,
            patchLevel: report.patchLevel,
            state: 'up',
            'agent.heartbeatAt': now,
            updatedAt: now,
          },
          $inc: { revision: 1 },
        },
      );
      const result: HostCheckResult = {
        hostId: report.hostId,
        qemuVersion: report.facts.qemuVersion,
        vcpus: report.facts.vcpus,
        memoryMiB: report.facts.memoryMiB,
        guests: report.guests.map((g) => g.vmId),
      };
      await recordEvent(inv, {
        operation: 'check-host',
        subject: `host/${report.hostId}`,
        outcome: 'completed',
        message: `host ${report.hostId} answered: QEMU ${result.qemuVersion}, ${result.guests.length} guest(s)`,
        ...currentRun(),
      });
      return result;
    },

    async recordHostUnreachable(hostId: string, reason: string): Promise<void> {
      await markHostUnreachable(inv, hostId);
      await recordEvent(inv, {
        operation: 'check-host',
        subject: `host/${hostId}`,
        outcome: 'failed',
        message: `host ${hostId} did not answer: ${reason}`,
        ...currentRun(),
      });
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
