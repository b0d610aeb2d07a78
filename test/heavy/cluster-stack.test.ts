import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { backupOperations } from '../../client/backup-operations';
import { rolloutOperations } from '../../client/rollout-operations';
import { connectClient } from '../../client/temporal';
import { vmOperations } from '../../client/vm-operations';
import { checkInvariants, settle } from '../../chaos/invariants';
import { powerOffLeftovers } from '../../chaos/run-chaos';
import type { ChaosModel } from '../../chaos/operations';
import { dataPaths, installed } from '../../domain/config';
import { openInventory, type Inventory } from '../../inventory/db';
import { importImage } from '../../inventory/images';
import { ClusterStack } from '../../scripts/services/cluster-stack';
import { committedMigration } from '../helpers/committed-migration';
import { localHosts } from '../../scripts/services/entry-points';
import { PRUNE_METRICS_SCHEDULE } from '../../worker/metrics-retention-schedule';

/**
 * virtflow on the production shape (scripts/services/cluster-stack.ts): the Temporal server on
 * PostgreSQL, the inventory through FerretDB on PostgreSQL, two controllers, three agents,
 * Prometheus. Every operation kind, a controller killed mid-migration, PostgreSQL restarted
 * mid-backup; then the promises the chaos run checks (each VM runs once and where the inventory
 * says, the reconciler finds nothing, no reservation or lease held).
 */
describe('the cluster stack: Temporal server and inventory on PostgreSQL, two controllers', () => {
  let stack: ClusterStack;
  let client: Client;
  let inv: Inventory;
  const model: ChaosModel = { vms: new Set(), backups: [], busy: new Set(), counter: 0, rolloutDone: false };

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-cluster-'));
    // PostgreSQL runs as the `postgres` user under root: it must reach its data directory.
    fs.chmodSync(dir, 0o755);
    stack = await ClusterStack.start(dir, { agentArgs: ['--facts-interval', '2', '--memory', '2048'] });
    client = await connectClient(stack.config);
    inv = await openInventory(stack.config);
    await importImage(inv, dataPaths(stack.config.dataDir).images, {
      name: 'debian-busybox',
      file: installed.guestDisk,
    });
    await settle(client, inv);
  }, 240_000);

  afterAll(async () => {
    await client?.connection.close();
    await inv?.close();
    await stack?.stop();
    if (stack) powerOffLeftovers(stack.config.dataDir);
  });

  test('create, migrate with a controller killed midway, back up across a PostgreSQL restart, restore, roll a patch', async () => {
    const vms = vmOperations(client, stack.config);
    const created = await (
      await vms.create({ vmId: 'c1', image: 'debian-busybox', memoryMiB: 128 })
    ).result();
    model.vms.add('c1');
    const source = created.host;

    // A slow migration, so that one controller dies while it transfers; the other finishes it.
    const moved = await committedMigration(inv, 'c1', async (attempt) => {
      if (attempt > 1) stack.restartController('controller-1');
      const migration = await vms.migrate({ vmId: 'c1', policy: { maxBandwidthMiBps: 2 } });
      for (;;) {
        const vm = await inv.vms.findOne({ _id: 'c1' });
        if (vm?.migration?.phase === 'transferring') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      await stack.killController('controller-1');
      return migration;
    });
    stack.restartController('controller-1');
    expect(moved.source).toBe(source);
    expect((await inv.vms.findOne({ _id: 'c1' }))?.host).toBe(moved.target);

    // PostgreSQL restarts under a running backup: Temporal and FerretDB reconnect, it completes.
    const backups = backupOperations(client, stack.config);
    const backup = await backups.run({ vmId: 'c1' });
    for (;;) {
      if (await inv.backups.findOne({ vmId: 'c1', state: 'running' })) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await stack.restartPostgres();
    const done = await backup.result();
    model.backups.push(done.backupId);
    expect((await inv.backups.findOne({ _id: done.backupId }))?.state).toBe('good');

    const restored = await (await backups.restore({ vmId: 'r1', backupId: done.backupId })).result();
    model.vms.add('r1');
    expect(restored).toMatchObject({ vmId: 'r1' });

    const rollout = await rolloutOperations(client, stack.config).start({
      name: 'cluster',
      patch: 'security-2026-11',
      hosts: localHosts.map((h) => h.hostId),
      maxUnavailable: 1,
      canaryHosts: 1,
    });
    const result = await rollout.result();
    expect(result.phase).toBe('done');
    expect(result.hosts.map((h) => h.state)).toEqual(['patched', 'patched', 'patched']);

    await settle(client, inv);
    const verdict = await checkInvariants(client, stack.config, inv, model);
    expect(verdict.violations).toEqual([]);
    expect(verdict.drift).toEqual([]);
  }, 900_000);

  test('Prometheus scrapes every worker process: virtflow metrics by kind, host capacity, the SDK runtime', async () => {
    const prom = stack.prometheus;
    // Scrapes come every 2 s. The operations since controller-1's restart are counted in full
    // (the kill took the counts of what it had run before with it, as a crash does).
    const started = async () => prom.query('sum by (kind) (virtflow_operations_started_total)');
    let series: Awaited<ReturnType<typeof started>> = [];
    for (let i = 0; i < 30 && !series.some((s) => s.metric.kind === 'rollingPatch'); i++) {
      series = await started();
      await new Promise((r) => setTimeout(r, 1000));
    }
    const byKind = Object.fromEntries(series.map((s) => [s.metric.kind, s.value]));
    expect(byKind).toMatchObject({ backupVm: 1, restoreVm: 1, rollingPatch: 1, patchHost: 3 });
    const outcomes = await prom.query('sum by (operation, outcome) (virtflow_operation_outcomes_total)');
    // At least once: a catalogue step retried across the PostgreSQL restart may count it twice.
    const backedUp = outcomes.find(
      (o) => o.metric.operation === 'backup-vm' && o.metric.outcome === 'completed',
    );
    expect(backedUp?.value).toBeGreaterThanOrEqual(1);
    const memory = await prom.query('max by (host, kind) (virtflow_host_memory_mib)');
    expect(memory.filter((s) => s.metric.kind === 'allocatable').map((s) => s.value)).toEqual([
      2048, 2048, 2048,
    ]);
    const up = await prom.query('up');
    expect(
      up
        .filter((s) => s.value === 1)
        .map((s) => s.metric.job)
        .sort(),
    ).toEqual([
      'temporal',
      'virtflow-agent',
      'virtflow-agent',
      'virtflow-agent',
      'virtflow-controller',
      'virtflow-controller',
    ]);
    // Host facts samples have a retention: the controllers' hourly schedule prunes older ones.
    const old = new Date(Date.now() - 10 * 24 * 3600 * 1000);
    await inv.metrics.insertOne({
      _id: 'ancient-sample',
      hostId: 'host-a',
      at: old,
      host: { loadAverage1m: 0, memoryFreeMiB: 0, runningVms: 0 },
      vms: [],
    });
    const recent = await inv.metrics.countDocuments({ at: { $gt: new Date(Date.now() - 60_000) } });
    await client.schedule.getHandle(PRUNE_METRICS_SCHEDULE).trigger();
    for (let i = 0; i < 60 && (await inv.metrics.findOne({ _id: 'ancient-sample' })); i++)
      await new Promise((r) => setTimeout(r, 500));
    expect(await inv.metrics.findOne({ _id: 'ancient-sample' })).toBeNull();
    expect(
      await inv.metrics.countDocuments({ at: { $gt: new Date(Date.now() - 120_000) } }),
    ).toBeGreaterThanOrEqual(recent);
    const sdk = await prom.query(
      'sum({__name__=~"temporal_workflow_completed(_total)?", job="virtflow-controller"})',
    );
    expect(sdk[0]?.value).toBeGreaterThan(0);
  }, 120_000);
});
