import { executeChild, ParentClosePolicy, patched, startChild } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { DriftSummary } from '../activities/controller/reconcile-activities';
import { isSimHost } from '../domain/names';
import { inventory, onHost } from './activity-proxies';
import { reasonOf } from './failures';
import { trackOperation } from './observability';
import { haRestart } from './ha-restart';
import { startVm } from './start-vm';

/**
 * A host's agent must pick up the question quickly and once, and answer soon: a frozen agent's
 * open long-poll still takes the task, so only the answer's bound ends the wait. One that does
 * not answer is lost, and the next pass hands its host to HA instead of waiting on it.
 */
const ask = (hostId: string) =>
  onHost(hostId, { scheduleToStartTimeout: '10 seconds', startToCloseTimeout: '10 seconds', attempts: 1 });

/** Runs begun before the catalogue was walked in pages sent every backup path at once. */
const BACKUPS_BY_PAGE = 'reconcile-backups-by-page';
/** Backups per page: a page's paths and answers stay far below Temporal's 2 MB payload limit. */
const BACKUP_PAGE = 500;

/**
 * Runs begun before the datastore was walked in pages too sent every disk path at once (over
 * 2 MB at 50,000 VMs) and carried every backup finding to the end of the pass.
 */
const FLEET_BY_PAGE = 'reconcile-fleet-by-page';
/** Findings a fleet pass lists in its result; the rest are counted (all are in `audit list`). */
const FOUND_LISTED = 100;

/** Runs begun before VM revisions were read first judged every VM on the report alone. */
const REVISIONS_BEFORE_REPORT = 'reconcile-revisions-before-report';

/**
 * Compares one host (`reconcile/<hostId>`) with the inventory: the QEMU processes its agent
 * finds against the VMs recorded on it. Safe fix-ups apply; a running guest is never killed.
 */
export async function reconcileHost(req: { hostId: string }): Promise<DriftSummary> {
  const op = trackOperation({ operation: 'reconcile', hosts: [req.hostId] });
  op.phase('inspecting', `asking ${req.hostId} what it runs`);
  // The VMs' revisions before the question: one that changes while the host answers is not judged on it.
  const before = patched(REVISIONS_BEFORE_REPORT)
    ? await inventory.vmRevisionsOn({ hostId: req.hostId })
    : undefined;
  // The network view (interfaces, guests' addresses) rides on the same question.
  const report = await ask(req.hostId).reportHost({ network: true });
  const summary = await inventory.reconcileHostReport({ hostId: req.hostId, report, before });
  // The host is healthy (its agent just answered): an HA VM whose guest died restarts there.
  for (const vmId of summary.haRestart ?? []) {
    op.phase('ha-restart', `restarting HA vm ${vmId} on ${req.hostId}`);
    try {
      await executeChild(startVm, {
        workflowId: `vm/${vmId}`,
        args: [{ vmId }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
    } catch (err) {
      // Another operation took the VM first, or the start failed: the next pass sees it again.
      op.phase(
        'ha-restart',
        `HA restart of ${vmId} did not happen: ${reasonOf((err as { cause?: unknown }).cause ?? err)}`,
      );
    }
  }
  op.phase(
    'done',
    `${summary.found.length} drift finding(s) on ${req.hostId}, ${summary.resolved} resolved since`,
  );
  return summary;
}

export interface FleetReconcileResult {
  hosts: Record<string, DriftSummary | { error: string }>;
  fleet: DriftSummary | { error: string };
  /** Lost hosts whose `host/<hostId>` HA restart this pass started. */
  lostHosts: string[];
}

/**
 * One reconciliation pass over every host that is up (each as a child `reconcile/<hostId>`),
 * then the fleet-wide records: disks on the datastore, reservations, and catalogued backups.
 * A Temporal Schedule runs it; `virtflow audit run` starts one now.
 */
export async function reconcileFleet(): Promise<FleetReconcileResult> {
  const op = trackOperation({ operation: 'reconcile' });
  const hostIds = await inventory.reconcilableHosts();
  const hosts: FleetReconcileResult['hosts'] = {};
  op.phase('hosts', `reconciling ${hostIds.length} host(s)`);
  await Promise.all(
    hostIds.map(async (hostId) => {
      try {
        hosts[hostId] = await executeChild(reconcileHost, {
          workflowId: `reconcile/${hostId}`,
          args: [{ hostId }],
        });
      } catch (err) {
        hosts[hostId] = { error: reasonOf((err as { cause?: unknown }).cause ?? err) };
      }
    }),
  );
  // The datastore and the backup repository are shared: any QEMU host can look at them.
  const inspector = hostIds.find((h) => !isSimHost(h) && !('error' in hosts[h]));
  let fleet: FleetReconcileResult['fleet'];
  try {
    if (patched(FLEET_BY_PAGE)) fleet = await reconcileFleetByPage(inspector);
    else {
      const disks = inspector ? await ask(inspector).listDatastore() : [];
      if (patched(BACKUPS_BY_PAGE)) {
        // The catalogue in pages: no payload or history event grows with the fleet's backups.
        const backupFound: DriftSummary['found'] = [];
        if (inspector) await walkBackupCatalogue(inspector, (page) => backupFound.push(...page));
        fleet = await inventory.reconcileFleetRecords({ disks, backupFiles: [], backupFound });
      } else {
        const paths = inspector ? await inventory.catalogedBackupFiles() : [];
        const backupFiles = inspector && paths.length ? await ask(inspector).inspectFiles({ paths }) : [];
        fleet = await inventory.reconcileFleetRecords({ disks, backupFiles });
      }
    }
  } catch (err) {
    fleet = { error: reasonOf(err) };
  }
  const lostHosts = await startHaRestarts(op);
  const total =
    Object.values(hosts).reduce((n, h) => n + ('found' in h ? h.found.length : 0), 0) +
    ('found' in fleet ? fleet.found.length + (fleet.more ?? 0) : 0);
  op.phase('done', `${total} drift finding(s) over ${hostIds.length} host(s)`);
  return { hosts, fleet, lostHosts };
}

/**
 * The shared datastore and the backup catalogue, a page at a time: each page's findings are
 * recorded as it is checked, and at the end whatever this pass did not see again is resolved.
 * Without a QEMU host to look at the storage, only the claims are checked.
 */
async function reconcileFleetByPage(inspector: string | undefined): Promise<DriftSummary> {
  const since = await inventory.fleetPassBegins();
  const found: DriftSummary['found'] = [];
  let more = 0;
  const keep = (page: DriftSummary['found']) => {
    const room = Math.max(0, FOUND_LISTED - found.length);
    found.push(...page.slice(0, room));
    more += page.length - Math.min(room, page.length);
  };
  if (inspector) {
    for (let after: string | undefined, left = true; left;) {
      const disks = await ask(inspector).listDatastore({ after, limit: BACKUP_PAGE });
      if (disks.length) keep(await inventory.checkDatastorePage({ disks, since }));
      after = disks.at(-1);
      left = disks.length === BACKUP_PAGE;
    }
    await walkBackupCatalogue(inspector, keep, since);
  }
  const end = await inventory.finishFleetPass({
    since,
    checked: inspector ? ['orphan-disk', 'backup-missing', 'leaked-reservation'] : ['leaked-reservation'],
  });
  keep(end.found);
  return { found, resolved: end.resolved, ...(more ? { more } : {}) };
}

/**
 * The catalogue's good backups a page at a time, their files checked by the inspector; a pass
 * that says when it began (`since`) has the catalogue read once for all its pages.
 */
async function walkBackupCatalogue(
  inspector: string,
  onFindings: (page: DriftSummary['found']) => void,
  since?: string,
): Promise<void> {
  let after: string | undefined;
  do {
    const page = await inventory.catalogedBackupPage({ after, limit: BACKUP_PAGE, since });
    if (page.paths.length) {
      const files = await ask(inspector).inspectFiles({ paths: page.paths });
      onFindings(await inventory.checkBackupFiles({ after, limit: BACKUP_PAGE, since, files }));
    }
    after = page.next;
  } while (after !== undefined);
}

/**
 * Starts `haRestart` for every lost host with HA VMs. It runs on as its own `host/<hostId>`
 * workflow (abandoned by this pass), so a host already busy with one is left to it.
 */
async function startHaRestarts(op: ReturnType<typeof trackOperation>): Promise<string[]> {
  const started: string[] = [];
  for (const hostId of await inventory.lostHosts()) {
    try {
      await startChild(haRestart, {
        workflowId: `host/${hostId}`,
        args: [{ hostId }],
        parentClosePolicy: ParentClosePolicy.ABANDON,
        staticSummary: `HA: fence lost host ${hostId} and restart its HA VMs elsewhere`,
      });
      started.push(hostId);
      op.phase('ha', `host ${hostId} is lost: started its HA restart`);
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }
  return started;
}
