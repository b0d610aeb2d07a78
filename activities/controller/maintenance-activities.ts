import { ApplicationFailure, Context } from '@temporalio/activity';
import { InsufficientCapacityError, NotFoundError, parseInput, ValidationError } from '../../domain/errors';
import { enterMaintenanceSchema, exitMaintenanceSchema } from '../../domain/maintenance';
import { liveMigrationRequest, placeVm, spreadChoice } from '../../domain/placement';
import { SCAN_BATCH, type Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { setHostMaintenance } from '../../inventory/hosts';
import { recentPlacementHosts } from '../../inventory/placement-view';
import type { HostDoc } from '../../inventory/schemas';
import { recentVmsOn } from '../../inventory/reservations';
import { getVm, vmCpuModel } from '../../inventory/vms';
import { currentRun } from './run-context';

/** A host's VMs, split into those running (to move) and the rest (they stay recorded there). */
function runningOrNot(vms: { id: string; state: string }[]): { running: string[]; stopped: string[] } {
  return {
    running: vms.filter((v) => v.state === 'running').map((v) => v.id),
    stopped: vms.filter((v) => v.state !== 'running').map((v) => v.id),
  };
}

/** Controller-side steps of host maintenance: the host's state, its VMs, evacuation targets. */
export function createMaintenanceActivities(inv: Inventory) {
  const audit = (
    hostId: string,
    outcome: 'completed' | 'failed' | 'info',
    message: string,
    operation: string,
  ) => recordEvent(inv, { operation, subject: `host/${hostId}`, outcome, message, ...currentRun() });

  return {
    /** Validates, marks the host so placement skips it, and lists what must move. */
    async beginMaintenance(input: unknown): Promise<{ running: string[]; stopped: string[] }> {
      const req = parseInput(enterMaintenanceSchema, input, '');
      const host = await inv.hosts.findOne({ _id: req.hostId });
      if (!host) throw new ValidationError('hostId', `no host named "${req.hostId}"`);
      await setHostMaintenance(inv, req.hostId, {
        maintenance: true,
        maintenanceState: 'entering',
        maintenanceReason: '',
      });
      // The shared snapshot (seconds old at most) is enough to start moving: a VM that arrives
      // after it is found by the exact look (`vmsOn`) the evacuation takes before it is done.
      const vms = await recentVmsOn(inv, req.hostId);
      await audit(
        req.hostId,
        'info',
        `host ${req.hostId} entering maintenance; ${vms.length} VM(s) on it`,
        'enter-maintenance',
      );
      return runningOrNot(vms);
    },

    /** The VMs recorded on a host now, running and not. */
    async vmsOn(req: { hostId: string }): Promise<{ running: string[]; stopped: string[] }> {
      const vms = await inv.vms
        .find({ host: req.hostId }, { batchSize: SCAN_BATCH })
        .sort({ _id: 1 })
        .toArray();
      return runningOrNot(vms.map((v) => ({ id: v._id, state: v.state })));
    },

    /**
     * A target for one evacuated VM: placement over hosts other than the source, skipping targets
     * that already failed for it and those at their inbound limit.
     */
    async chooseEvacuationTarget(req: {
      vmId: string;
      /** The host being evacuated: a VM no longer running there is not this evacuation's to move. */
      from: string;
      exclude: string[];
      preferPatchLevel?: string;
    }): Promise<{ target: string } | { gone: string }> {
      const vm = await getVm(inv, req.vmId).catch((err: unknown) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      if (!vm) return { gone: 'deleted' };
      if (vm.host !== req.from) return { gone: `now on ${vm.host}` };
      if (vm.state !== 'running') return { gone: `now ${vm.state}` };
      const hosts = await recentPlacementHosts(inv);
      const source = hosts.find((h) => h.id === vm.host);
      if (!source) throw new NotFoundError('host', req.from);
      // The evacuation live-migrates: the same target checks as planMigration's.
      const request = liveMigrationRequest(
        { ...vm, cpuModel: vmCpuModel(vm), networks: vm.guest?.nics },
        source,
      );
      const decision = placeVm(hosts, { ...request, excludeHosts: [...req.exclude, source.id] });
      // During a rolling patch, hosts already patched rank first: the VM then moves only once.
      if (req.preferPatchLevel) {
        const level = new Map(hosts.map((h) => [h.id, h.patchLevel]));
        const patchedFirst = (r: { host: string }) => (level.get(r.host) === req.preferPatchLevel ? 0 : 1);
        decision.ranked.sort((a, b) => patchedFirst(a) - patchedFirst(b));
      }
      const chosen = spreadChoice(decision);
      if (!chosen) throw new InsufficientCapacityError(`vm ${vm._id} (evacuation)`, decision.rejected);
      return { target: chosen };
    },

    async setMaintenanceState(req: {
      hostId: string;
      state: HostDoc['maintenanceState'];
      reason?: string;
      evacuatedVms?: string[];
    }): Promise<void> {
      // Evacuations add up: entering maintenance again must not forget the VMs moved the first time.
      const earlier = (await inv.hosts.findOne({ _id: req.hostId }))?.evacuatedVms ?? [];
      await setHostMaintenance(inv, req.hostId, {
        maintenance: req.state !== 'none',
        maintenanceState: req.state,
        maintenanceReason: req.reason ?? '',
        ...(req.evacuatedVms ? { evacuatedVms: [...new Set([...earlier, ...req.evacuatedVms])] } : {}),
      });
      if (req.state === 'in-maintenance' || req.state === 'blocked') {
        await audit(
          req.hostId,
          req.state === 'blocked' ? 'failed' : 'completed',
          req.state === 'blocked'
            ? `host ${req.hostId} blocked entering maintenance: ${req.reason}`
            : `host ${req.hostId} is in maintenance`,
          'enter-maintenance',
        );
      }
    },

    /**
     * Waits until a restarted agent is back: a new process registered, its host up, reporting
     * the expected patch level. Fails with the host's last state when time runs out.
     */
    async waitForAgentRestart(req: {
      hostId: string;
      previousPid: number;
      expectedLevel: string;
      timeoutMs: number;
    }) {
      const ctx = Context.current();
      const deadline = Date.now() + req.timeoutMs;
      for (;;) {
        const host = await inv.hosts.findOne({ _id: req.hostId });
        if (
          host &&
          host.agent.pid !== req.previousPid &&
          host.state === 'up' &&
          host.patchLevel === req.expectedLevel
        ) {
          return { pid: host.agent.pid, patchLevel: host.patchLevel };
        }
        if (Date.now() > deadline) {
          throw ApplicationFailure.nonRetryable(
            `agent of ${req.hostId} did not come back at patch level ${req.expectedLevel} within ${req.timeoutMs / 1000} s ` +
              `(state ${host?.state}, pid ${host?.agent.pid}, patch level ${host?.patchLevel})`,
            'HealthCheckError',
          );
        }
        ctx.heartbeat();
        await new Promise((r) => setTimeout(r, 250));
      }
    },

    /** Returns the host to service; tells which VMs of the last evacuation to move back, if asked to. */
    async endMaintenance(input: unknown): Promise<{ evacuatedVms: string[] }> {
      const req = parseInput(exitMaintenanceSchema, input, '');
      const host = await inv.hosts.findOne({ _id: req.hostId });
      if (!host) throw new ValidationError('hostId', `no host named "${req.hostId}"`);
      await setHostMaintenance(inv, req.hostId, {
        maintenance: false,
        maintenanceState: 'none',
        maintenanceReason: '',
        evacuatedVms: [],
      });
      await audit(req.hostId, 'completed', `host ${req.hostId} returned to service`, 'exit-maintenance');
      if (!req.migrateBack) return { evacuatedVms: [] };
      // One lookup by id each: on FerretDB a filter on more than `_id` scans every VM.
      const evacuated = await Promise.all((host.evacuatedVms ?? []).map((_id) => inv.vms.findOne({ _id })));
      return { evacuatedVms: evacuated.filter((v) => v?.state === 'running').map((v) => v!._id) };
    },
  };
}
