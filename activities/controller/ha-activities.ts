import { dataPaths, type Config } from '../../domain/config';
import { InvalidStateError, NotFoundError, parseInput, ValidationError } from '../../domain/errors';
import { fenceFor, loadFenceConfig } from '../../domain/fence';
import { setHaRequestSchema, type SetHaRequest } from '../../domain/ha';
import { lossReason, massLoss } from '../../domain/liveness';
import { placeVm, type PlacementDecision } from '../../domain/placement';
import type { Inventory } from '../../inventory/db';
import { recordDrift, resolveUnseen } from '../../inventory/drift';
import { recordEvent } from '../../inventory/events';
import { markHostUnreachable } from '../../inventory/hosts';
import { placementHosts } from '../../inventory/placement-view';
import { releaseClaims } from '../../inventory/reservations';
import type { EventDoc, HostDoc, VmDoc } from '../../inventory/schemas';
import { getVm, updateVm, vmCpuModel } from '../../inventory/vms';
import { FenceFailedError, runFence } from './fence-drivers';
import { currentRun, reservationOwner } from './run-context';

export interface HaCandidate {
  vmId: string;
  priority: number;
  memoryMiB: number;
  vcpus: number;
}

const isHa = (vm: VmDoc) => vm.ha?.enabled === true;

/** Where a VM's guest runs: on its verified migration's target, else on its recorded host. */
const guestHost = (vm: VmDoc) => (vm.migration?.phase === 'verified' ? vm.migration.target : vm.host);

/**
 * Controller side of host liveness and HA restart. Only the `host/<hostId>` workflow writes a
 * lost host's document (its agent no longer does), so these writes race nothing.
 */
export function createHaActivities(inv: Inventory, config: Config) {
  const audit = (e: Omit<EventDoc, '_id' | 'at' | 'workflowId' | 'runId'>) =>
    recordEvent(inv, { ...e, ...currentRun() });

  async function readHost(hostId: string): Promise<HostDoc> {
    const h = await inv.hosts.findOne({ _id: hostId });
    if (!h) throw new NotFoundError('host', hostId);
    return h;
  }

  async function markLost(h: HostDoc, reason: string): Promise<{ lost: boolean; reason: string }> {
    await markHostUnreachable(inv, h._id);
    await audit({
      operation: 'ha-restart',
      subject: `host/${h._id}`,
      outcome: 'info',
      message: `host ${h._id} is unreachable: ${reason}`,
    });
    return { lost: true, reason };
  }

  /** Why HA must not fence hosts of this cluster by itself now, if it must not. */
  function clusterLoss(cluster: HostDoc[], isLost: (h: HostDoc) => boolean): string | undefined {
    const members = cluster.filter((h) => !h.maintenance);
    return massLoss(
      { lost: members.filter(isLost).length, total: members.length, name: cluster[0]?.cluster ?? '?' },
      config.ha.maxLostFraction,
    );
  }

  /**
   * Clusters mostly lost at once, each reported as drift (resolved by itself once the hosts
   * answer again): HA fences none of their hosts by itself.
   */
  async function refuseMassLoss(hosts: HostDoc[], isLost: (h: HostDoc) => boolean): Promise<Set<string>> {
    const refused = new Set<string>();
    const seen: string[] = [];
    for (const name of new Set(hosts.map((h) => h.cluster))) {
      const why = clusterLoss(
        hosts.filter((h) => h.cluster === name),
        isLost,
      );
      if (!why) continue;
      refused.add(name);
      const doc = await recordDrift(inv, {
        kind: 'mass-host-loss',
        hostId: null,
        subject: `cluster/${name}`,
        message: why,
        fix: 'check the hosts; then `virtflow host fence <host> --force` for each one really lost',
      });
      seen.push(doc._id);
    }
    await resolveUnseen(inv, { hostId: null, kinds: ['mass-host-loss'] }, seen);
    return refused;
  }

  return {
    /**
     * Hosts whose loss HA must handle now: lost, not waiting for an operator, with an HA VM
     * recorded running there, in a cluster not mostly lost at once (that is reported as drift
     * instead, and left to an operator). A lost host with nothing to restart is only marked
     * unreachable.
     */
    async lostHosts(): Promise<string[]> {
      const now = Date.now();
      const hosts = await inv.hosts.find({}).toArray();
      const isLost = (h: HostDoc) => lossReason(h, now, config.ha.downGraceMs) !== undefined;
      const lost = hosts.filter(isLost);
      const refused = await refuseMassLoss(hosts, isLost);
      if (lost.length === 0) return [];
      const protectedOn = new Set(
        (await inv.vms.find({ state: 'running', 'ha.enabled': true }).toArray()).map(guestHost),
      );
      const act: string[] = [];
      for (const h of lost) {
        if (protectedOn.has(h._id) && !h.needsOperator && !refused.has(h.cluster)) act.push(h._id);
        else if (h.state === 'up') {
          await markHostUnreachable(inv, h._id);
        }
      }
      return act.sort();
    },

    /**
     * Re-checks the loss inside the host's workflow (the agent may have come back since, or
     * most of its cluster may look lost with it) and marks the host unreachable. An operator's
     * `force` fences a host whose agent still answers, or one left in maintenance (otherwise
     * never considered lost), whatever the rest of its cluster looks like.
     */
    async confirmHostLost(req: {
      hostId: string;
      force: boolean;
    }): Promise<{ lost: boolean; reason: string }> {
      const h = await readHost(req.hostId);
      if (req.force) {
        const reason = lossReason(h, Date.now(), config.ha.downGraceMs) ?? 'an operator asked to fence it';
        return markLost(h, reason);
      }
      const now = Date.now();
      const reason = lossReason(h, now, config.ha.downGraceMs);
      if (!reason)
        return {
          lost: false,
          reason: `${h._id} answers again (heartbeat ${h.agent.heartbeatAt.toISOString()})`,
        };
      const cluster = await inv.hosts.find({ cluster: h.cluster }).toArray();
      const mass = clusterLoss(cluster, (x) => lossReason(x, now, config.ha.downGraceMs) !== undefined);
      if (mass) return { lost: false, reason: mass };
      return markLost(h, reason);
    },

    /**
     * The agent answered on its own task queue although its database heartbeat is late: the
     * host is alive, only its liveness record is not. Nothing is fenced.
     */
    async recordFenceAverted(req: { hostId: string; reason: string }): Promise<void> {
      await audit({
        operation: 'ha-restart',
        subject: `host/${req.hostId}`,
        outcome: 'info',
        message: `host ${req.hostId} not fenced: ${req.reason}`,
      });
    },

    /**
     * Fences the host through its fence action. Only a clean exit counts as confirmation; any
     * other end (no action, non-zero exit, timeout) leaves the host waiting for an operator.
     */
    async fenceHost(req: { hostId: string }): Promise<string> {
      const h = await readHost(req.hostId);
      let driver;
      try {
        driver = fenceFor(loadFenceConfig(config.fenceConfigPath), h._id);
      } catch (err) {
        throw new FenceFailedError((err as Error).message);
      }
      if (!driver)
        throw new FenceFailedError(
          `host ${h._id} has no fence configured on the controller (VIRTFLOW_FENCE_CONFIG)`,
        );
      const said = await runFence(driver, {
        hostId: h._id,
        hostDir: dataPaths(config.dataDir).hostDir(h._id),
        agentPid: h.agent.pid,
      });
      await inv.hosts.updateOne(
        { _id: h._id },
        { $set: { fencedAt: new Date(), needsOperator: '', updatedAt: new Date() }, $inc: { revision: 1 } },
      );
      await audit({
        operation: 'fence-host',
        subject: `host/${h._id}`,
        outcome: 'completed',
        message: `host ${h._id} fenced: ${said}`,
      });
      return said;
    },

    async markNeedsOperator(req: { hostId: string; reason: string }): Promise<void> {
      await inv.hosts.updateOne(
        { _id: req.hostId },
        { $set: { needsOperator: req.reason, updatedAt: new Date() }, $inc: { revision: 1 } },
      );
      await audit({
        operation: 'fence-host',
        subject: `host/${req.hostId}`,
        outcome: 'failed',
        message: `host ${req.hostId} needs an operator: ${req.reason}; none of its VMs was restarted`,
      });
    },

    /**
     * After a confirmed fence nothing of the host runs: its VMs are recorded crashed (that is
     * the truth now), and the HA ones are returned, to restart elsewhere. A guest that a verified
     * migration moved here died with it too: HA takes that VM over from its migration (which
     * then ends without a commit) and records it crashed here.
     */
    async recordHostFenced(req: { hostId: string }): Promise<HaCandidate[]> {
      // Arrivals first: a migration that commits between the two reads is then seen in both,
      // and its stale arrival loses its conditional write.
      const arrived = await inv.vms
        .find({ 'migration.target': req.hostId, 'migration.phase': 'verified' })
        .toArray();
      const vms = await inv.vms.find({ host: req.hostId, state: { $in: ['running', 'crashed'] } }).toArray();
      const candidates: HaCandidate[] = [];
      const crashed = async (vm: VmDoc): Promise<boolean> => {
        if (vm.state === 'crashed') return true;
        const moved = vm.migration?.phase === 'verified' && vm.migration.target === req.hostId;
        // Only as read: a VM that changed meanwhile (a migration committed it elsewhere) is not this host's.
        return updateVm(
          inv,
          vm._id,
          moved
            ? {
                state: 'crashed',
                host: req.hostId,
                migration: null,
                stateReason: `host ${req.hostId} was fenced after the migration from ${vm.host} was verified`,
              }
            : { state: 'crashed', stateReason: `host ${req.hostId} was fenced` },
          { ifRevision: vm.revision },
        );
      };
      for (const vm of [...arrived, ...vms]) {
        // A verified migration's guest runs on its target: the migration commits it there.
        if (guestHost(vm) !== req.hostId) continue;
        if (!(await crashed(vm))) continue;
        if (isHa(vm))
          candidates.push({
            vmId: vm._id,
            priority: vm.ha!.priority,
            memoryMiB: vm.memoryMiB,
            vcpus: vm.vcpus,
          });
      }
      return candidates;
    },

    /** Where an HA VM restarts: placement over the healthy hosts of its host's cluster. */
    async placeHaRestart(req: { vmId: string; from: string }): Promise<PlacementDecision> {
      const vm = await getVm(inv, req.vmId);
      const from = await readHost(req.from);
      const request = {
        memoryMiB: vm.memoryMiB,
        vcpus: vm.vcpus,
        excludeHosts: [req.from],
        cluster: from.cluster,
        // A restart is a fresh boot: any accelerator will do, but the CPU model stays the VM's.
        cpuModel: vmCpuModel(vm),
        networks: vm.guest?.nics,
      };
      let decision = placeVm(await placementHosts(inv), request);
      // The quick view may count a just-committed VM twice: before refusing, look exactly.
      if (!decision.chosen) decision = placeVm(await placementHosts(inv, { exact: true }), request);
      if (!decision.chosen) {
        const why = Object.entries(decision.rejected).map(([h, r]) => `${h}: ${r.join(', ')}`);
        throw new InvalidStateError(`no host can take vm ${vm._id}: ${why.join('; ') || 'no other host'}`);
      }
      return decision;
    },

    /** The VM runs on its new host: record it there and give back the reservation. */
    async commitHaRestart(req: { vmId: string; from: string; to: string }): Promise<void> {
      await updateVm(inv, req.vmId, { state: 'running', host: req.to, stateReason: '' });
      await releaseClaims(inv, reservationOwner());
      await audit({
        operation: 'ha-restart',
        subject: `vm/${req.vmId}`,
        outcome: 'completed',
        message: `vm ${req.vmId} restarted on ${req.to} after ${req.from} was lost`,
        details: { from: req.from, to: req.to },
      });
    },

    async recordHaRestartFailed(req: { vmId: string; from: string; reason: string }): Promise<void> {
      await releaseClaims(inv, reservationOwner());
      await updateVm(inv, req.vmId, { state: 'crashed', stateReason: `HA restart failed: ${req.reason}` });
      await audit({
        operation: 'ha-restart',
        subject: `vm/${req.vmId}`,
        outcome: 'rolled-back',
        message: `vm ${req.vmId} (from lost host ${req.from}) did not restart: ${req.reason}`,
      });
    },

    /** `vm set-ha`: validated completely before the one write. */
    async setVmHa(input: SetHaRequest): Promise<VmDoc> {
      const req = parseInput(setHaRequestSchema, input, '');
      const vm = await getVm(inv, req.vmId);
      if (vm.state === 'creating' || vm.state === 'deleting')
        throw new ValidationError('vmId', `vm ${vm._id} is ${vm.state}`);
      await updateVm(inv, vm._id, { ha: { enabled: req.enabled, priority: req.priority } });
      await audit({
        operation: 'set-ha',
        subject: `vm/${vm._id}`,
        outcome: 'completed',
        message: req.enabled
          ? `vm ${vm._id} is HA-protected with priority ${req.priority}`
          : `vm ${vm._id} is no longer HA-protected`,
      });
      return getVm(inv, vm._id);
    },
  };
}

export type HaActivities = ReturnType<typeof createHaActivities>;
