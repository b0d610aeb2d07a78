import type { Config } from '../../domain/config';
import { currentRun, reservationOwner } from './run-context';
import {
  InsufficientCapacityError,
  InvalidStateError,
  parseInput,
  ValidationError,
} from '../../domain/errors';
import { placeVm, type NetworkNeed, type PlacementDecision } from '../../domain/placement';
import { placementHosts } from '../../inventory/placement-view';
import { formatBytes } from '../../domain/bytes';
import { UEFI_MIN_MEMORY_MIB } from '../../domain/guest';
import { newVmDisks } from '../../domain/quota';
import { createVmRequestSchema, type CreateVmSpec, type ProvisionSpec } from '../../domain/requests';
import type { Inventory } from '../../inventory/db';
import { recordEvent } from '../../inventory/events';
import { imageFor } from '../../inventory/images';
import { diskGrowth, withinQuota } from '../../inventory/quotas';
import { claimCapacity, releaseClaims } from '../../inventory/reservations';
import type { EventDoc, VmDoc, VmState } from '../../inventory/schemas';
import { allocateNewVmNics, deleteVmDoc, getVm, claimVmIdForRun, updateVm } from '../../inventory/vms';
import type { ImageRef } from '../host/contract';

/** Inventory activities of the VM lifecycle; they run on the controller worker. */
export function createVmInventoryActivities(inv: Inventory, config: Pick<Config, 'cpuBaseline'>) {
  const audit = (e: Omit<EventDoc, '_id' | 'at' | 'workflowId' | 'runId'>) =>
    recordEvent(inv, { ...e, ...currentRun() });

  return {
    /**
     * Validates a create request completely, then claims the VM id with a `creating` document.
     * Nothing is written unless every check passed. A retry of this activity finds its own claim.
     */
    async beginCreateVm(input: unknown): Promise<{ spec: ProvisionSpec; image: ImageRef }> {
      const request = parseInput(createVmRequestSchema, input, '');
      const image = await imageFor(inv, request.image, request.project);
      if (image.firmware === 'uefi' && request.memoryMiB < UEFI_MIN_MEMORY_MIB)
        throw new ValidationError(
          'memoryMiB',
          `${request.memoryMiB} MiB is too little for image ${image._id}, which boots with UEFI firmware (at least ${UEFI_MIN_MEMORY_MIB} MiB)`,
        );
      if (request.diskSizeBytes !== undefined && request.diskSizeBytes < image.virtualSizeBytes)
        throw new ValidationError(
          'diskSizeBytes',
          `${formatBytes(request.diskSizeBytes)} is smaller than image ${image._id}, whose disk is ${formatBytes(image.virtualSizeBytes)}`,
        );
      if (request.host && !(await inv.hosts.findOne({ _id: request.host }))) {
        throw new ValidationError('host', `no host named "${request.host}" (see \`virtflow host list\`)`);
      }
      const spec: ProvisionSpec = {
        ...request,
        guest: {
          firmware: image.firmware,
          guestAgent: image.guestAgent,
          sshKeys: request.sshKeys,
          userData: request.userData,
          dataDisks: request.dataDisks,
          // The cluster's baseline now: the VM keeps it, so every host it moves to presents it.
          cpuModel: config.cpuBaseline,
        },
      };
      await claimVmIdForRun(inv, spec, newVmDisks(request, image.virtualSizeBytes), currentRun().runId);
      if (request.nics?.length) spec.guest.nics = await allocateNewVmNics(inv, spec.vmId, request.nics);
      return {
        spec,
        image: {
          path: image.path,
          format: image.format,
          sha256: image.sha256,
          sizeBytes: request.diskSizeBytes,
        },
      };
    },

    /** Picks the most expedient host (or checks the requested one), saying why others were rejected. */
    async placeVm(req: {
      spec: CreateVmSpec & { guest?: { cpuModel?: string; nics?: NetworkNeed[] } };
      excludeHosts?: string[];
    }): Promise<PlacementDecision> {
      const decide = async (exact: boolean) => {
        const hosts = await placementHosts(inv, { exact });
        const candidates = req.spec.host ? hosts.filter((h) => h.id === req.spec.host) : hosts;
        return placeVm(candidates, {
          memoryMiB: req.spec.memoryMiB,
          vcpus: req.spec.vcpus,
          labels: req.spec.hostLabels,
          excludeHosts: req.excludeHosts,
          cpuModel: req.spec.guest?.cpuModel,
          networks: req.spec.guest?.nics,
        });
      };
      // The quick view may count a just-committed VM twice: before refusing, look exactly.
      let decision = await decide(false);
      if (!decision.chosen) decision = await decide(true);
      if (!decision.chosen) {
        throw new InsufficientCapacityError(
          `vm ${req.spec.vmId} (${req.spec.memoryMiB} MiB, ${req.spec.vcpus} vCPU)`,
          decision.rejected,
        );
      }
      return decision;
    },

    async claimCapacity(req: {
      hostId: string;
      vmId: string;
      memoryMiB: number;
      vcpus: number;
    }): Promise<string> {
      return (await claimCapacity(inv, { ...req, owner: reservationOwner() }))._id;
    },

    /** The VM exists now: record its owner and state, then give back the reservation. */
    async commitVmCreated(req: { vmId: string; host: string; diskPath: string }): Promise<void> {
      await updateVm(inv, req.vmId, {
        state: 'running',
        host: req.host,
        diskPath: req.diskPath,
        stateReason: '',
      });
      await releaseClaims(inv, reservationOwner());
      await audit({
        operation: 'create-vm',
        subject: `vm/${req.vmId}`,
        outcome: 'completed',
        message: `vm ${req.vmId} created and running on ${req.host}`,
        details: { host: req.host },
      });
    },

    /** Undoes the inventory side of a failed create: no reservation and no VM document remain. */
    async abandonVmCreate(req: { vmId: string; reason: string }): Promise<void> {
      await releaseClaims(inv, reservationOwner());
      const vm = await inv.vms.findOne({ _id: req.vmId });
      if (vm?.state === 'creating' && vm.createdByRun === currentRun().runId)
        await deleteVmDoc(inv, req.vmId);
      await audit({
        operation: 'create-vm',
        subject: `vm/${req.vmId}`,
        outcome: 'rolled-back',
        message: `vm ${req.vmId} was not created: ${req.reason}`,
      });
    },

    /** Loads the VM and checks the operation is allowed in its state. */
    async beginVmOperation(req: {
      vmId: string;
      operation: string;
      allowedStates: VmState[];
    }): Promise<VmDoc> {
      const vm = await getVm(inv, req.vmId);
      if (!req.allowedStates.includes(vm.state)) {
        throw new InvalidStateError(
          `cannot ${req.operation} vm ${req.vmId}: it is ${vm.state}${vm.stateReason ? ` (${vm.stateReason})` : ''}; ${req.operation} needs ${req.allowedStates.join(' or ')}`,
        );
      }
      if (!vm.host) throw new InvalidStateError(`vm ${req.vmId} has no host`);
      // Only the run that owns `vm/<id>` gets here: an intent left behind is a migration that
      // ended without settling, and where the guest runs is for `audit fix` to find out first.
      if (vm.migration)
        throw new InvalidStateError(
          `cannot ${req.operation} vm ${req.vmId}: its migration to ${vm.migration.target} (run ${vm.migration.runId}) ended unsettled; see \`virtflow audit list\``,
        );
      return vm;
    },

    /**
     * Records a disk's growth before its host grows it, if the project's quota has room for the
     * larger disk (arbitrated as a create's claim is). Returns the disks as recorded before, for
     * the workflow to put back should the host not grow it. A size not above the record changes
     * nothing here: the host refuses a shrink, naming both sizes.
     */
    async claimDiskGrowth(req: { vmId: string; disk: number; sizeBytes: number }): Promise<number[]> {
      const vm = await getVm(inv, req.vmId);
      const growth = await diskGrowth(inv, vm, req.disk, req.sizeBytes);
      if (growth.after) {
        const after = growth.after;
        await withinQuota(
          inv,
          growth.subject,
          currentRun().runId,
          () => updateVm(inv, vm._id, { diskBytes: after }),
          growth.was,
        );
      }
      return growth.before;
    },

    /** Puts back a VM's disks as recorded before a growth its host did not make. */
    async restoreDiskRecord(req: { vmId: string; diskBytes: number[] }): Promise<void> {
      await updateVm(inv, req.vmId, { diskBytes: req.diskBytes });
    },

    /** Checks a host can run guests now: up, agent alive, not in maintenance. */
    async assertHostUsable(req: { hostId: string }): Promise<void> {
      const hosts = await placementHosts(inv);
      const host = hosts.find((h) => h.id === req.hostId);
      if (!host) throw new ValidationError('host', `no host named "${req.hostId}"`);
      // Capacity is already held by the VM on its own host: check liveness filters only.
      const decision = placeVm([{ ...host, used: { memoryMiB: 0, vcpus: 0, runningVms: 0 } }], {
        memoryMiB: 0,
        vcpus: 0,
      });
      if (!decision.chosen) {
        throw new InvalidStateError(
          `host ${req.hostId} cannot run guests now: ${decision.rejected[req.hostId].join('; ')}`,
        );
      }
    },

    /** Records a VM's new state and the operation's outcome in one step. */
    async recordVmOutcome(req: {
      vmId: string;
      state: VmState;
      reason?: string;
      operation: string;
      outcome: EventDoc['outcome'];
      message: string;
    }): Promise<void> {
      await updateVm(inv, req.vmId, { state: req.state, stateReason: req.reason ?? '' });
      await audit({
        operation: req.operation,
        subject: `vm/${req.vmId}`,
        outcome: req.outcome,
        message: req.message,
      });
    },

    /** The VM is gone from its host and datastore: forget it and anything it held. */
    async recordVmDeleted(req: { vmId: string; host: string | null }): Promise<void> {
      await deleteVmDoc(inv, req.vmId);
      await audit({
        operation: 'delete-vm',
        subject: `vm/${req.vmId}`,
        outcome: 'completed',
        message: `vm ${req.vmId} deleted${req.host ? ` from ${req.host}` : ''}`,
      });
    },
  };
}

export type VmInventoryActivities = ReturnType<typeof createVmInventoryActivities>;
