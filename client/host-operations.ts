import type { Client } from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput } from '../domain/errors';
import {
  enterMaintenanceSchema,
  exitMaintenanceSchema,
  type EnterMaintenanceRequest,
  type ExitMaintenanceRequest,
} from '../domain/maintenance';
import { workflowIds } from '../domain/names';
import type { enterMaintenance, exitMaintenance, haRestart, patchHost } from '../workflows';
import { fenceRequestSchema, type FenceRequest } from '../domain/ha';
import { patchHostSchema, type PatchHostRequest } from '../domain/patch';
import { resolveBlocked } from '../workflows/maintenance-control';
import { sendControl } from './updates';
import { startResourceWorkflow } from './vm-operations';

/** The typed client for host operations: maintenance, evacuation, return to service. */
export function hostOperations(client: Client, config: Config) {
  return {
    async enterMaintenance(req: EnterMaintenanceRequest) {
      const spec = parseInput(enterMaintenanceSchema, req, '');
      return startResourceWorkflow<typeof enterMaintenance>(
        client,
        config,
        { kind: 'host', id: spec.hostId },
        'enterMaintenance',
        [spec],
        `Enter maintenance on ${spec.hostId}: evacuate its VMs (${spec.maxParallel} at a time, unmovable: ${spec.onUnmovable})`,
      );
    },
    async exitMaintenance(req: ExitMaintenanceRequest) {
      const spec = parseInput(exitMaintenanceSchema, req, '');
      return startResourceWorkflow<typeof exitMaintenance>(
        client,
        config,
        { kind: 'host', id: spec.hostId },
        'exitMaintenance',
        [spec],
        `Return ${spec.hostId} to service${spec.migrateBack ? ' and bring its VMs back' : ''}`,
      );
    },
    async patch(req: PatchHostRequest) {
      const spec = parseInput(patchHostSchema, req, '');
      return startResourceWorkflow<typeof patchHost>(
        client,
        config,
        { kind: 'host', id: spec.hostId },
        'patchHost',
        [spec],
        `Patch ${spec.hostId} with ${spec.patch}`,
      );
    },
    /**
     * Handles a host's loss now (`host/<hostId>`): fence it, then restart its HA VMs elsewhere.
     * Refused while the agent answers unless `force` (its guests are killed by the fence).
     */
    async fence(req: FenceRequest) {
      const spec = parseInput(fenceRequestSchema, req, '');
      return startResourceWorkflow<typeof haRestart>(
        client,
        config,
        { kind: 'host', id: spec.hostId },
        'haRestart',
        [spec],
        `Fence ${spec.hostId} and restart its HA VMs elsewhere${spec.force ? ' (forced by an operator)' : ''}`,
      );
    },
    /** Answers a host blocked entering maintenance: retry its unmovable VMs, or let them be stopped. */
    async resolveBlocked(hostId: string, action: 'retry' | 'stop-them'): Promise<string> {
      return sendControl(() =>
        client.workflow
          .getHandle(workflowIds.host(hostId))
          .executeUpdate(resolveBlocked, { args: [{ action }] }),
      );
    },
  };
}
