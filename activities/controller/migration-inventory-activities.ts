import type { GuestConfig } from '../../domain/guest';
import { InsufficientCapacityError, parseInput, PreCheckError, ValidationError } from '../../domain/errors';
import { migrationRequestSchema, type MigrationPolicy } from '../../domain/migration';
import {
  filters,
  liveMigrationRequest,
  placeVm,
  type PlacementHost,
  type PlacementRequest,
} from '../../domain/placement';
import type { Inventory } from '../../inventory/db';
import type { MigrationIntent } from '../../inventory/schemas';
import { recordEvent } from '../../inventory/events';
import { metrics } from '../../domain/metrics';
import { recentPlacementHosts } from '../../inventory/placement-view';
import { claimCapacity, releaseClaims } from '../../inventory/reservations';
import { getVm, updateVm, vmCpuModel } from '../../inventory/vms';
import { currentRun, reservationOwner } from './run-context';

export interface MigrationPlan {
  vmId: string;
  source: string;
  target: string;
  memoryMiB: number;
  vcpus: number;
  diskPath: string;
  guest: GuestConfig;
  policy: MigrationPolicy;
  /** The claim on the target, once made. */
  reservationId?: string;
}

/**
 * The target's checks, as Nova's conductor names them: each failure is its own error type with
 * a sentence an operator can act on.
 */
function checkTarget(
  target: PlacementHost,
  source: PlacementHost,
  req: PlacementRequest,
  vmId: string,
): void {
  if (target.id === source.id)
    throw new PreCheckError('SameHostError', `vm ${vmId} already runs on ${target.id}`);
  const now = Date.now();
  const unavailable = [filters.hostUp, filters.agentAlive, filters.notInMaintenance]
    .map((f) => f(target, req, now))
    .filter((r): r is string => r !== null);
  if (unavailable.length > 0) {
    throw new PreCheckError(
      'TargetUnavailableError',
      `target ${target.id} cannot take vm ${vmId}: ${unavailable.join('; ')}`,
    );
  }
  const incompatible = filters.cpuCompatible(target, req, now);
  if (incompatible)
    throw new PreCheckError('IncompatibleHostError', `target ${target.id} is incompatible: ${incompatible}`);
  const short = [filters.memory, filters.vcpus]
    .map((f) => f(target, req, now))
    .filter((r): r is string => r !== null);
  if (short.length > 0) throw new InsufficientCapacityError(`vm ${vmId}`, { [target.id]: short });
}

/** A VM still owned by a migration run that ended without committing or rolling back. */
function unfinishedMigration(vmId: string, intent: MigrationIntent): PreCheckError {
  return new PreCheckError(
    'MigrationUnfinishedError',
    `vm ${vmId} is owned by migration run ${intent.runId} to ${intent.target} (${intent.phase} since ${intent.since.toISOString()}); ` +
      'see `virtflow audit list` for how it ended',
  );
}

/** Controller-side steps of a live migration: pre-checks, reservation, commit, rollback record. */
export function createMigrationInventoryActivities(inv: Inventory) {
  return {
    /** Validates the request and runs the named pre-checks; nothing is written. */
    async planMigration(input: unknown): Promise<MigrationPlan> {
      const req = parseInput(migrationRequestSchema, input, '');
      const vm = await getVm(inv, req.vmId);
      if (vm.state !== 'running' || !vm.host) {
        throw new PreCheckError(
          'VmNotRunningError',
          `vm ${vm._id} is ${vm.state}; only a running VM can be live-migrated`,
        );
      }
      if (vm.migration) throw unfinishedMigration(vm._id, vm.migration);
      // A view up to a second old is enough to plan: the target's claim re-checks its capacity.
      const hosts = await recentPlacementHosts(inv);
      const source = hosts.find((h) => h.id === vm.host);
      if (!source)
        throw new PreCheckError('SourceMismatchError', `vm ${vm._id}'s host ${vm.host} is not registered`);
      const placement = liveMigrationRequest(
        { ...vm, cpuModel: vmCpuModel(vm), networks: vm.guest?.nics },
        source,
      );
      let target: string;
      if (req.to) {
        const t = hosts.find((h) => h.id === req.to);
        if (!t) throw new ValidationError('to', `no host named "${req.to}" (see \`virtflow host list\`)`);
        checkTarget(t, source, { ...placement, excludeHosts: [] }, vm._id);
        target = t.id;
      } else {
        const decision = placeVm(hosts, placement);
        if (!decision.chosen)
          throw new InsufficientCapacityError(
            `vm ${vm._id} (migration from ${source.id})`,
            decision.rejected,
          );
        target = decision.chosen;
      }
      return {
        vmId: vm._id,
        source: source.id,
        target,
        memoryMiB: vm.memoryMiB,
        vcpus: vm.vcpus,
        diskPath: vm.diskPath,
        guest: vm.guest,
        policy: req.policy,
      };
    },

    /**
     * Holds the VM's memory and vCPUs on the target for as long as the migration runs, and
     * records the migration's intent on the VM before anything moves: from here until the
     * commit or the rollback record, the VM belongs to this run.
     */
    async reserveMigrationTarget(plan: MigrationPlan): Promise<string> {
      const r = await claimCapacity(inv, {
        hostId: plan.target,
        vmId: plan.vmId,
        memoryMiB: plan.memoryMiB,
        vcpus: plan.vcpus,
        owner: reservationOwner(),
      });
      const run = currentRun();
      const vm = await getVm(inv, plan.vmId);
      if (vm.migration && vm.migration.runId !== run.runId) throw unfinishedMigration(vm._id, vm.migration);
      if (!vm.migration)
        await updateVm(inv, plan.vmId, {
          migration: { target: plan.target, ...run, phase: 'transferring', since: new Date() },
        });
      return r._id;
    },

    /** The guest answered on the target: from now on the migration only moves forward. */
    async recordMigrationVerified(req: { plan: MigrationPlan }): Promise<void> {
      const vm = await getVm(inv, req.plan.vmId);
      if (vm.migration?.runId !== currentRun().runId) return;
      await updateVm(inv, vm._id, { migration: { ...vm.migration, phase: 'verified' } });
    },

    /**
     * The destination is verified and adopted: the VM now belongs to the target. Conditioned on
     * the VM still being this run's: if its target was fenced meanwhile, HA took the VM over and
     * the commit writes nothing (`taken-over`). A retry after a commit that landed finds its own
     * `migratedBy` and only finishes the record.
     */
    async commitMigration(req: {
      plan: MigrationPlan;
      details: Record<string, unknown>;
    }): Promise<'committed' | 'taken-over'> {
      const { plan } = req;
      const run = currentRun();
      for (;;) {
        const vm = await getVm(inv, plan.vmId);
        if (vm.migratedBy === run.runId && !vm.migration) break;
        if (vm.migration?.runId !== run.runId) return 'taken-over';
        const set = {
          host: plan.target,
          state: 'running' as const,
          stateReason: `migrated from ${plan.source}`,
          migration: null,
          migratedBy: run.runId,
        };
        if (await updateVm(inv, plan.vmId, set, { ifRevision: vm.revision })) break;
      }
      await releaseClaims(inv, reservationOwner(), plan.reservationId);
      await recordEvent(inv, {
        operation: 'live-migration',
        subject: `vm/${plan.vmId}`,
        outcome: 'completed',
        message: `vm ${plan.vmId} migrated from ${plan.source} to ${plan.target}`,
        details: { source: plan.source, target: plan.target, ...req.details },
        ...run,
      });
      const d = req.details as Partial<
        Record<'totalTimeMs' | 'downtimeMs' | 'transferredBytes', number | null>
      >;
      const m = metrics();
      if (typeof d.totalTimeMs === 'number') m.migrationDuration.record(d.totalTimeMs);
      if (typeof d.downtimeMs === 'number') m.migrationDowntime.record(d.downtimeMs);
      if (typeof d.transferredBytes === 'number') m.migrationBytes.record(d.transferredBytes);
      return 'committed';
    },

    /**
     * Whether HA took the VM over from this verified migration (its target was fenced): the
     * intent is no longer this run's, and this run did not commit it.
     */
    async migrationTakenOver(req: { plan: MigrationPlan }): Promise<boolean> {
      const vm = await getVm(inv, req.plan.vmId);
      const run = currentRun().runId;
      return vm.migration?.runId !== run && vm.migratedBy !== run;
    },

    /**
     * Records how a migration ended without a commit, and gives back the target's capacity.
     * `taken-over`: the target was fenced after verification and HA owns the VM now.
     */
    async recordMigrationNotCommitted(req: {
      plan: MigrationPlan;
      reason: string;
      outcome: 'rolled-back' | 'failed' | 'taken-over';
      vmState?: 'crashed';
    }): Promise<void> {
      const { plan } = req;
      await releaseClaims(inv, reservationOwner(), plan.reservationId);
      const vm = await inv.vms.findOne({ _id: plan.vmId });
      const ours = vm?.migration?.runId === currentRun().runId;
      if (req.vmState || ours)
        await updateVm(inv, plan.vmId, {
          ...(req.vmState ? { state: req.vmState, stateReason: req.reason } : {}),
          ...(ours ? { migration: null } : {}),
        });
      await recordEvent(inv, {
        operation: 'live-migration',
        subject: `vm/${plan.vmId}`,
        outcome: req.outcome === 'taken-over' ? 'failed' : req.outcome,
        message: {
          'rolled-back': `migration of ${plan.vmId} to ${plan.target} rolled back; it runs on ${plan.source}: ${req.reason}`,
          failed: `migration of ${plan.vmId} to ${plan.target} failed and needs an operator: ${req.reason}`,
          'taken-over': `migration of ${plan.vmId} to ${plan.target} ended without a commit, HA owns the VM: ${req.reason}`,
        }[req.outcome],
        details: { source: plan.source, target: plan.target },
        ...currentRun(),
      });
    },
  };
}
