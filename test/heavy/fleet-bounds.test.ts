import fs from 'node:fs';
import path from 'node:path';
import { createBackupPolicyActivities } from '../../activities/controller/backup-policy-activities';
import { createReconcileActivities } from '../../activities/controller/reconcile-activities';
import { createInspectionActivities } from '../../activities/host/inspection-activities';
import { dataPaths } from '../../domain/config';
import { openInventory, type Inventory } from '../../inventory/db';
import { recordDrift } from '../../inventory/drift';
import type { BackupDoc } from '../../inventory/schemas';
import { populateSimFleet } from '../../inventory/sim-fleet';
import { fileConfig } from '../helpers/test-stack';

/** Ten times the largest fleet the other tests run (the 5,000-VM simulated rollout). */
const VMS = 50_000;
const PAGE = 500;
/** Temporal refuses a payload over 2 MB: every page must stay far below it. */
const PAYLOAD_LIMIT = 2 * 1024 * 1024;
const bytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

/**
 * The fleet-wide steps whose inputs and outputs once grew with the fleet, at 50,000 simulated
 * VMs on FerretDB: a backup policy's selection and a reconcile pass's walk through the
 * datastore and the backup catalogue. Each travels in pages of 500; the whole list, which the
 * workflows carried before, is shown to be over Temporal's payload limit at this size. (The
 * workflows' side, continue-as-new with a cursor and the pages in a loop, is in
 * test/workflows/scheduled-backup; their command changes are replayed by test/workflows/replay.)
 */
describe('fleet-wide steps at 50,000 VMs stay in pages far below the payload limit', () => {
  const { config } = fileConfig('fleet-bounds');
  const paths = dataPaths(config.dataDir);
  let inv: Inventory;
  let vmIds: string[];
  const noTemporal = () => Promise.reject(new Error('no Temporal client in this test'));

  beforeAll(async () => {
    const stale = await openInventory(config);
    await stale.db.dropDatabase();
    await stale.close();
    inv = await openInventory(config);
    const fleet = await populateSimFleet(inv, {
      cluster: 'big',
      hosts: 500,
      vms: VMS,
      vmLabels: { tier: 'web' },
    });
    expect(fleet.vms).toBe(VMS);
    vmIds = (await inv.vms.find({}, { projection: { _id: 1 } }).toArray()).map((v) => v._id).sort();
    // Every VM's disk and one good backup of it, as files on the shared storage.
    fs.rmSync(paths.datastore, { recursive: true, force: true });
    fs.rmSync(paths.backups, { recursive: true, force: true });
    fs.mkdirSync(paths.datastore, { recursive: true });
    fs.mkdirSync(paths.backups, { recursive: true });
    const now = new Date();
    const backups: BackupDoc[] = vmIds.map((vmId) => ({
      _id: `${vmId}-b1`,
      createdAt: now,
      updatedAt: now,
      revision: 1,
      vmId,
      host: 'sim-big-0001',
      kind: 'full',
      state: 'good',
      chainId: `${vmId}-c1`,
      parentId: null,
      bitmap: 'vf-chain-1',
      path: path.join(paths.backups, `${vmId}-b1.qcow2`),
      consistency: 'crash-consistent',
      vm: {
        image: 'sim-image',
        memoryMiB: 2048,
        vcpus: 1,
        guest: { firmware: 'bios', guestAgent: false, sshKeys: [], dataDisks: [], cpuModel: 'qemu64' },
      },
      virtualSizeBytes: 1 << 30,
      sizeBytes: 0,
      startedAt: now,
      finishedAt: now,
      protected: false,
    }));
    for (let i = 0; i < backups.length; i += PAGE) await inv.backups.insertMany(backups.slice(i, i + PAGE));
    for (const vmId of vmIds) {
      fs.writeFileSync(path.join(paths.datastore, `${vmId}.qcow2`), '');
      fs.writeFileSync(path.join(paths.backups, `${vmId}-b1.qcow2`), '');
    }
    // 100,000 documents into FerretDB: about a minute on 2 cores.
  }, 600_000);
  afterAll(async () => {
    await inv.close();
    fs.rmSync(paths.datastore, { recursive: true, force: true });
    fs.rmSync(paths.backups, { recursive: true, force: true });
  });

  test('a backup policy selects its 50,000 VMs a page at a time, each VM once', async () => {
    const policy = createBackupPolicyActivities(inv, noTemporal);
    const seen: string[] = [];
    let largest = 0;
    let pages = 0;
    for (let after: string | undefined, left = true; left; pages++) {
      const page = await policy.policyVmPage({
        selector: { vmLabels: { tier: 'web' } },
        run: 'backup-policy/web-1',
        after,
        limit: PAGE,
      });
      largest = Math.max(largest, bytes(page));
      seen.push(...page.vmIds);
      after = page.next;
      left = after !== undefined;
    }
    expect(seen).toEqual(vmIds);
    expect(pages).toBe(VMS / PAGE + 1);
    expect(largest).toBeLessThan(PAYLOAD_LIMIT / 50);
    // What a run carried before: the whole selection, with every outcome beside it.
    const carried = vmIds.map((vmId) => ({ vmId, outcome: 'completed', backupId: `${vmId}-b1` }));
    expect(bytes({ vmIds, results: carried })).toBeGreaterThan(PAYLOAD_LIMIT);
  });

  test('a reconcile pass walks the datastore and the catalogue a page at a time, and resolves what it no longer sees', async () => {
    const reconcile = createReconcileActivities(inv, noTemporal);
    const host = createInspectionActivities({ datastoreDir: paths.datastore });
    // Drift of the storage that is over: an orphan disk since deleted.
    const over = await recordDrift(inv, {
      kind: 'orphan-disk',
      hostId: null,
      subject: `disk/${path.join(paths.datastore, 'long-gone.qcow2')}`,
      message: 'disk long-gone.qcow2 belongs to no VM in the inventory',
    });
    // And drift that is new: a disk nobody owns, and one backup's file gone.
    fs.writeFileSync(path.join(paths.datastore, 'stray.qcow2'), '');
    fs.rmSync(path.join(paths.backups, `${vmIds[12_345]}-b1.qcow2`));

    const since = await reconcile.fleetPassBegins();
    const found: string[] = [];
    let largest = 0;
    let disks = 0;
    for (let after: string | undefined, left = true; left;) {
      const page = await host.listDatastore({ after, limit: PAGE });
      largest = Math.max(largest, bytes(page));
      disks += page.length;
      found.push(...(await reconcile.checkDatastorePage({ disks: page, since })).map((f) => f.subject));
      after = page.at(-1);
      left = page.length === PAGE;
    }
    let backups = 0;
    for (let after: string | undefined, left = true; left;) {
      const page = await reconcile.catalogedBackupPage({ after, limit: PAGE, since });
      const files = await host.inspectFiles({ paths: page.paths });
      largest = Math.max(largest, bytes(page), bytes(files));
      backups += page.paths.length;
      found.push(
        ...(await reconcile.checkBackupFiles({ after, limit: PAGE, since, files })).map((f) => f.subject),
      );
      after = page.next;
      left = after !== undefined;
    }
    const end = await reconcile.finishFleetPass({ since, checked: ['orphan-disk', 'backup-missing'] });

    expect(disks).toBe(VMS + 1);
    expect(backups).toBe(VMS);
    expect(found.sort()).toEqual(
      [`backup/${vmIds[12_345]}-b1`, `disk/${path.join(paths.datastore, 'stray.qcow2')}`].sort(),
    );
    expect(largest).toBeLessThan(PAYLOAD_LIMIT / 20);
    expect(end.resolved).toBe(1);
    expect((await inv.drift.findOne({ _id: over._id }))?.state).toBe('resolved');
    // What a pass sent before: every disk path of the datastore, in one payload.
    expect(bytes(await host.listDatastore())).toBeGreaterThan(PAYLOAD_LIMIT);
  });
});
