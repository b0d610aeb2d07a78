import { networkDrift } from './network-drift';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { InvalidStateError, NotFoundError } from '../../domain/errors';
import { vmIdOfDiskName } from '../../domain/names';
import { heartbeatFresh } from '../../domain/liveness';
import type { Inventory } from '../../inventory/db';
import { recordDrift, resolveNotSeenSince, resolveUnseen, type DriftFinding } from '../../inventory/drift';
import { releaseReservation } from '../../inventory/reservations';
import { recordEvent } from '../../inventory/events';
import type { BackupDoc, DriftDoc, DriftKind, MigrationIntent, VmDoc } from '../../inventory/schemas';
import { updateVm } from '../../inventory/vms';
import { pageAfter, PassSnapshots } from './pass-snapshots';
import { currentRun } from './run-context';
import type { HostReport } from '../host/contract';

export interface DriftSummary {
  found: { id: string; kind: DriftKind; subject: string; state: string }[];
  resolved: number;
  /** Findings beyond those listed in `found` (a fleet pass lists the first 100). */
  more?: number;
  /** HA VMs found dead on a healthy host: the pass restarts them there. */
  haRestart?: string[];
}

const HOST_KINDS: DriftKind[] = [
  'vm-not-running',
  'orphan-process',
  'duplicate-vm',
  'unfinished-migration',
  'nic-drift',
  'orphan-interface',
];
const FLEET_KINDS: DriftKind[] = ['orphan-disk', 'leaked-reservation', 'backup-missing'];

/** Guests the platform starts on its own for a moment: a patch's canary. */
const isTransient = (vmId: string) => vmId.startsWith('canary-');

/** A VM whose migration run ended without its commit or rollback record: an operator settles it. */
function unfinishedMigration(vm: VmDoc, hostId: string, sourceStatus: string | undefined): DriftFinding {
  const m = vm.migration!;
  return {
    kind: 'unfinished-migration',
    hostId,
    subject: `vm/${vm._id}`,
    message:
      `vm ${vm._id}'s migration from ${hostId} to ${m.target} (run ${m.runId}) ended ${m.phase} without settling; ` +
      `QEMU on ${hostId} reports ${sourceStatus ?? 'no process'}. Nothing touches the VM until \`virtflow audit fix\` ` +
      'records it where exactly one copy runs',
  };
}

/**
 * The reconciler's controller side: compares what hosts report with the inventory, records each
 * disagreement as drift (and an audit event), applies the fix-ups that are always safe, and
 * proposes the rest. It never touches a resource an operation is working on: a VM whose
 * `vm/<id>` workflow runs is in the middle of a legitimate change.
 */
export function createReconcileActivities(inv: Inventory, client: () => Promise<Client>) {
  /** Whether a workflow (run) is still open; a workflow Temporal does not know is closed. */
  async function running(workflowId: string, runId?: string): Promise<boolean> {
    try {
      const d = await (await client()).workflow.getHandle(workflowId, runId).describe();
      return d.status.name === 'RUNNING';
    } catch (err) {
      if ((err as Error).name === 'WorkflowNotFoundError') return false;
      throw err;
    }
  }

  const snapshots = new PassSnapshots();

  /**
   * Good backups by id, `limit` after `after`: one page of a pass's walk through the catalogue.
   * A pass that says when it began (`since`) pages a catalogue read once for it.
   */
  async function backupPage(req: { after?: string; limit: number; since?: string }): Promise<BackupDoc[]> {
    if (req.since === undefined)
      return inv.backups
        .find({ state: 'good', ...(req.after ? { _id: { $gt: req.after } } : {}) })
        .sort({ _id: 1 })
        .limit(req.limit)
        .toArray();
    const catalogue = await snapshots.get('backup-catalogue', req.since, () =>
      inv.backups
        .find(
          { state: 'good' },
          { projection: { _id: 1, vmId: 1, path: 1, sizeBytes: 1, dataDisks: 1, state: 1 } },
        )
        .sort({ _id: 1 })
        .toArray(),
    );
    return pageAfter(catalogue, (b) => b._id, req.after, req.limit).page;
  }

  /** The VM ids and disk paths of the fleet, read once for the pass that began at `since`. */
  function fleetDisks(since: string): Promise<{ ids: Set<string>; disks: Set<string> }> {
    return snapshots.get('fleet-disks', since, async () => {
      const vms = await inv.vms.find({}, { projection: { _id: 1, diskPath: 1 } }).toArray();
      return { ids: new Set(vms.map((v) => v._id)), disks: new Set(vms.map((v) => v.diskPath)) };
    });
  }

  /** Backups whose files are gone or changed, as a host found them; each one is marked missing. */
  async function backupFindings(
    checked: { path: string; exists: boolean; sizeBytes: number }[],
    catalogued: BackupDoc[],
  ): Promise<DriftFinding[]> {
    const files = new Map(checked.map((f) => [f.path, f]));
    const findings: DriftFinding[] = [];
    for (const b of catalogued) {
      // The root file, then each data disk's: the first one gone or changed is reported.
      const wanted = [{ path: b.path, sizeBytes: b.sizeBytes }, ...(b.dataDisks ?? [])];
      const problem = wanted.flatMap((want) => {
        const f = files.get(want.path);
        if (!f) return [];
        if (!f.exists) return [`file ${want.path} is gone`];
        if (want.sizeBytes !== undefined && f.sizeBytes !== want.sizeBytes)
          return [`file ${want.path} is ${f.sizeBytes} bytes, catalogued ${want.sizeBytes}`];
        return [];
      })[0];
      if (!problem) continue;
      // Only a backup still offered is marked: one pruned since the page was read is not missing.
      const marked = await inv.backups.updateOne(
        { _id: b._id, state: 'good' },
        { $set: { state: 'missing', updatedAt: new Date() } },
      );
      if (marked.matchedCount === 0) continue;
      findings.push({
        kind: 'backup-missing',
        hostId: null,
        subject: `backup/${b._id}`,
        message: `backup ${b._id} of vm ${b.vmId}: ${problem}`,
        fixed: 'no longer offered for restore',
      });
    }
    return findings;
  }

  /** Records findings; with a scope, resolves that scope's open ones this pass did not find. */
  async function record(
    findings: DriftFinding[],
    scope?: { hostId: string | null; kinds: DriftKind[] },
    alsoSeen: { id: string }[] = [],
  ) {
    const docs: DriftDoc[] = [];
    for (const f of findings) docs.push(await recordDrift(inv, f));
    const resolved = scope
      ? await resolveUnseen(inv, scope, [...docs.map((d) => d._id), ...alsoSeen.map((d) => d.id)])
      : 0;
    return {
      found: docs.map((d) => ({ id: d._id, kind: d.kind, subject: d.subject, state: d.state })),
      resolved,
    };
  }

  /**
   * Disks on the datastore that no VM owns. A VM's record exists from the moment its id is
   * claimed, before its create or restore commits a disk path: the files named for its id are
   * its own, data disks included. Only the VMs these disks could belong to are read.
   */
  async function orphanDisks(disks: string[]): Promise<DriftFinding[]> {
    // Each query below reads the whole VM collection on FerretDB: none for nothing to check.
    if (disks.length === 0) return [];
    const vmIdOf = (disk: string) => vmIdOfDiskName(path.basename(disk));
    const named = [...new Set(disks.map(vmIdOf).filter((id): id is string => id !== undefined))];
    const claimed = new Set(
      (await inv.vms.find({ _id: { $in: named } }, { projection: { _id: 1 } }).toArray()).map((v) => v._id),
    );
    const unclaimed = disks.filter((d) => {
      const vmId = vmIdOf(d);
      return vmId === undefined || !claimed.has(vmId);
    });
    const owners = unclaimed.length
      ? await inv.vms.find({ diskPath: { $in: unclaimed } }, { projection: { diskPath: 1 } }).toArray()
      : [];
    const owned = new Set(owners.map((v) => v.diskPath));
    return unclaimed
      .filter((d) => !owned.has(d))
      .map((disk) => ({
        kind: 'orphan-disk' as const,
        hostId: null,
        subject: `disk/${disk}`,
        message: `disk ${disk} belongs to no VM in the inventory`,
      }));
  }

  /** Active claims whose workflow run is closed: each is released and reported fixed. */
  async function leakedReservations(): Promise<DriftFinding[]> {
    const findings: DriftFinding[] = [];
    for (const r of await inv.reservations.find({ state: 'active' }).toArray()) {
      const [workflowId, runId] = r.owner.split('@');
      if (await running(workflowId, runId)) continue;
      await releaseReservation(inv, r._id);
      findings.push({
        kind: 'leaked-reservation',
        hostId: null,
        subject: `reservation/${r._id}`,
        message: `reservation ${r._id} (${r.memoryMiB} MiB on ${r.hostId} for vm ${r.vmId}) is held by ${r.owner}, which is closed`,
        fixed: 'released',
      });
    }
    return findings;
  }

  return {
    /** One host: its QEMU processes against the VMs recorded on it. */
    /** Each VM recorded on a host, with its revision: read before the host is asked what it runs. */
    async vmRevisionsOn(req: { hostId: string }): Promise<Record<string, number>> {
      const vms = await inv.vms.find({ host: req.hostId }, { projection: { revision: 1 } }).toArray();
      return Object.fromEntries(vms.map((v) => [v._id, v.revision]));
    },

    /**
     * One host's report against the VMs recorded on it. `before` holds their revisions from
     * before the report was taken: a VM that changed since (a start that committed meanwhile)
     * is judged by the next pass, not by a report older than its change.
     */
    async reconcileHostReport(req: {
      hostId: string;
      report: HostReport;
      before?: Record<string, number>;
    }): Promise<DriftSummary> {
      const { hostId, report, before } = req;
      const findings: DriftFinding[] = [];
      const guests = new Map(report.guests.filter((g) => !isTransient(g.vmId)).map((g) => [g.vmId, g]));
      const recorded = await inv.vms.find({ host: hostId }).toArray();
      const haRestart: string[] = [];
      for (const vm of recorded) {
        if (vm.migration) {
          // Owned by its migration; only a run that ended without settling is a finding.
          if (!(await running(vm.migration.workflowId, vm.migration.runId)))
            findings.push(unfinishedMigration(vm, hostId, guests.get(vm._id)?.status));
          continue;
        }
        if (vm.state !== 'running' || guests.has(vm._id)) continue;
        if (before && before[vm._id] !== vm.revision) continue;
        if (await running(`vm/${vm._id}`)) continue;
        const reason = `no QEMU process for it on ${hostId} (found by the reconciler)`;
        const marked = await updateVm(
          inv,
          vm._id,
          { state: 'crashed', stateReason: reason },
          { ifRevision: vm.revision },
        );
        if (!marked) continue;
        findings.push({
          kind: 'vm-not-running',
          hostId,
          subject: `vm/${vm._id}`,
          message: `vm ${vm._id} is recorded running on ${hostId}, but ${reason}`,
          fixed: vm.ha?.enabled ? 'marked crashed; HA restarts it on its host' : 'marked crashed',
        });
        if (vm.ha?.enabled) haRestart.push(vm._id);
      }
      for (const g of guests.values()) {
        const vm = await inv.vms.findOne({ _id: g.vmId });
        // A migration's destination is its own; an unsettled one is reported on the source.
        if (vm?.host === hostId || vm?.migration?.target === hostId) continue;
        if (vm && (await running(`vm/${vm._id}`))) continue;
        if (vm?.host && vm.state === 'running') {
          findings.push({
            kind: 'duplicate-vm',
            hostId,
            subject: `vm/${g.vmId}`,
            message: `vm ${g.vmId} runs on ${hostId} (pid ${g.pid}, ${g.status}) but is recorded running on ${vm.host}: two copies`,
          });
        } else {
          findings.push({
            kind: 'orphan-process',
            hostId,
            subject: `host/${hostId}/qemu/${g.vmId}`,
            message: vm
              ? `a QEMU for vm ${g.vmId} runs on ${hostId} (pid ${g.pid}, ${g.status}), but the VM is recorded ${vm.state}${vm.host ? ` on ${vm.host}` : ''}; left running`
              : `a QEMU for unknown vm ${g.vmId} runs on ${hostId} (pid ${g.pid}, ${g.status}); left running`,
          });
        }
      }
      if (report.network) {
        const vmsHere = await inv.vms.find({ _id: { $in: [...guests.keys()] } }).toArray();
        const networks = (await inv.networks.find({}).toArray()).map((n) => n._id);
        findings.push(...networkDrift(hostId, report.network, vmsHere, networks));
      }
      return { ...(await record(findings, { hostId, kinds: HOST_KINDS })), haRestart };
    },

    /**
     * One page of the catalogue's good backups (by id, after `after`), with the paths a host
     * checks: a pass walks the catalogue in pages, so no payload grows with the fleet's backups.
     */
    async catalogedBackupPage(req: {
      after?: string;
      limit: number;
      since?: string;
    }): Promise<{ paths: string[]; next?: string }> {
      const page = await backupPage(req);
      return {
        paths: page.flatMap((b) => [b.path, ...(b.dataDisks ?? []).map((d) => d.path)]),
        next: page.length === req.limit ? page[page.length - 1]._id : undefined,
      };
    },

    /** Checks one page of backup files as a host found them; gone or changed ones are findings. */
    async checkBackupFiles(req: {
      after?: string;
      limit: number;
      since?: string;
      files: { path: string; exists: boolean; sizeBytes: number }[];
    }): Promise<DriftSummary['found']> {
      const findings = await backupFindings(req.files, await backupPage(req));
      const docs: DriftDoc[] = [];
      for (const f of findings) docs.push(await recordDrift(inv, f));
      return docs.map((d) => ({ id: d._id, kind: d.kind, subject: d.subject, state: d.state }));
    },

    /** Paths of the backups the catalogue offers, for a host to check they are still there. */
    async catalogedBackupFiles(): Promise<string[]> {
      return (await inv.backups.find({ state: 'good' }).toArray()).flatMap((b) => [
        b.path,
        ...(b.dataDisks ?? []).map((d) => d.path),
      ]);
    },

    /** Fleet-wide records: disks nobody owns, claims nobody holds, backups that are gone. */
    async reconcileFleetRecords(req: {
      disks: string[];
      backupFiles: { path: string; exists: boolean; sizeBytes: number }[];
      /** Backup findings of this pass already recorded page by page (checkBackupFiles). */
      backupFound?: DriftSummary['found'];
    }): Promise<DriftSummary> {
      const findings: DriftFinding[] = [...(await orphanDisks(req.disks)), ...(await leakedReservations())];
      const catalogued = req.backupFiles.length ? await inv.backups.find({ state: 'good' }).toArray() : [];
      findings.push(...(await backupFindings(req.backupFiles, catalogued)));
      const paged = req.backupFound ?? [];
      const summary = await record(findings, { hostId: null, kinds: FLEET_KINDS }, paged);
      return { ...summary, found: [...summary.found, ...paged] };
    },

    /** When a fleet pass began, by the controller's clock: what it does not see again after that is resolved. */
    async fleetPassBegins(): Promise<string> {
      return new Date().toISOString();
    },

    /** One page of the datastore as a host listed it: disks nobody owns are recorded. */
    async checkDatastorePage(req: { disks: string[]; since: string }): Promise<DriftSummary['found']> {
      // Most disks belong to a VM of the pass's snapshot; the few others are looked up as they are now.
      const fleet = await fleetDisks(req.since);
      const unknown = req.disks.filter((d) => {
        const vmId = vmIdOfDiskName(path.basename(d));
        return !fleet.disks.has(d) && (vmId === undefined || !fleet.ids.has(vmId));
      });
      return (await record(await orphanDisks(unknown))).found;
    },

    /**
     * The end of a fleet pass walked in pages: claims nobody holds are released and recorded,
     * and open fleet findings of the kinds this pass checked that it did not see again since it
     * began are resolved. No list of what was seen travels: each sighting is on its finding.
     */
    async finishFleetPass(req: { since: string; checked: DriftKind[] }): Promise<DriftSummary> {
      const { found } = await record(await leakedReservations());
      const resolved = await resolveNotSeenSince(
        inv,
        { hostId: null, kinds: req.checked.filter((k) => FLEET_KINDS.includes(k)) },
        new Date(req.since),
      );
      return { found, resolved };
    },

    /** Hosts whose agents answer: the ones a pass asks what they run. */
    async reconcilableHosts(): Promise<string[]> {
      const now = Date.now();
      return (await inv.hosts.find({ state: 'up' }).toArray())
        .filter((h) => heartbeatFresh(h.agent, now))
        .map((h) => h._id)
        .sort();
    },

    async readDrift(req: { id: string }): Promise<DriftDoc> {
      const d = await inv.drift.findOne({ _id: req.id });
      if (!d) throw new NotFoundError('drift', req.id);
      return d;
    },

    /**
     * Derives an open finding again at fix time, from the inventory as it is now and the host's
     * answer (`hostStatus`, QEMU's run state of the VM there). Returns why it no longer holds, or
     * undefined when the fix is still due.
     */
    async driftGone(req: { id: string; hostStatus?: string }): Promise<string | undefined> {
      const d = await inv.drift.findOne({ _id: req.id });
      if (!d) throw new NotFoundError('drift', req.id);
      if (d.kind === 'orphan-process' || d.kind === 'duplicate-vm') {
        if (req.hostStatus === 'absent') return `no QEMU of it runs on ${d.hostId} any more`;
        const vmId = d.subject.split('/').pop()!;
        const vm = await inv.vms.findOne({ _id: vmId });
        if (vm?.host === d.hostId) return `vm ${vmId} is recorded on ${d.hostId} now`;
        if (vm?.migration?.target === d.hostId) return `vm ${vmId} is migrating to ${d.hostId}`;
        if (d.kind === 'duplicate-vm' && vm?.state !== 'running')
          return `vm ${vmId} is ${vm?.state ?? 'gone'} now, not running elsewhere: an operator decides which copy to keep`;
      }
      if (d.kind === 'orphan-disk') {
        const disk = d.subject.slice('disk/'.length);
        const vmId = vmIdOfDiskName(path.basename(disk));
        const owner = await inv.vms.findOne(vmId ? { _id: vmId } : { diskPath: disk });
        if (owner) return `vm ${owner._id} owns ${disk} now`;
      }
      return undefined;
    },

    async markDriftResolved(req: { id: string; why: string }): Promise<void> {
      await inv.drift.updateOne(
        { _id: req.id },
        { $set: { state: 'resolved', fix: `not needed: ${req.why}`, updatedAt: new Date() } },
      );
    },

    /** The migration that owns a VM, with the VM's recorded (source) host. */
    async readMigrationIntent(req: { vmId: string }): Promise<(MigrationIntent & { source: string }) | null> {
      const vm = await inv.vms.findOne({ _id: req.vmId });
      return vm?.migration && vm.host ? { ...vm.migration, source: vm.host } : null;
    },

    /**
     * Records a VM whose migration ended unsettled where exactly one copy runs, as both hosts
     * just reported. Refused while the migration's run is open, when the intent changed since
     * it was read, or when both copies run.
     */
    async settleMigrationIntent(req: {
      vmId: string;
      runId: string;
      sourceRunning: boolean;
      targetRunning: boolean;
    }): Promise<string> {
      const vm = await inv.vms.findOne({ _id: req.vmId });
      const m = vm?.migration;
      if (!vm || !m || m.runId !== req.runId)
        throw new InvalidStateError(`vm ${req.vmId}'s migration intent changed since it was read`);
      if (await running(m.workflowId, m.runId))
        throw new InvalidStateError(
          `migration run ${m.runId} of vm ${vm._id} is still open: it settles itself`,
        );
      if (req.sourceRunning && req.targetRunning)
        throw new InvalidStateError(
          `vm ${vm._id} runs on both ${vm.host} and ${m.target}: stop one copy by hand (\`virtflow audit fix\` will not choose)`,
        );
      let how: string;
      if (req.targetRunning) {
        await updateVm(inv, vm._id, {
          host: m.target,
          state: 'running',
          stateReason: `migrated from ${vm.host} (settled by an operator)`,
          migration: null,
        });
        how = `recorded vm ${vm._id} on ${m.target}, where its guest runs`;
      } else if (req.sourceRunning) {
        await updateVm(inv, vm._id, { migration: null });
        how = `kept vm ${vm._id} on ${vm.host}, where its guest runs`;
      } else {
        const reason = `its migration to ${m.target} ended unsettled and neither host runs it`;
        await updateVm(inv, vm._id, { state: 'crashed', stateReason: reason, migration: null });
        how = `recorded vm ${vm._id} crashed on ${vm.host}: ${reason}`;
      }
      await recordEvent(inv, {
        operation: 'fix-drift',
        subject: `vm/${vm._id}`,
        outcome: 'completed',
        message: how,
        ...currentRun(),
      });
      return how;
    },

    async markDriftFixed(req: { id: string; how: string }): Promise<void> {
      await inv.drift.updateOne(
        { _id: req.id },
        { $set: { state: 'fixed', fix: req.how, updatedAt: new Date() } },
      );
    },
  };
}
