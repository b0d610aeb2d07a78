import fs from 'node:fs';
import path from 'node:path';
import { auditOperations } from '../../client/audit-operations';
import { startFerretDb } from '../../scripts/services/ferretdb';
import { findFreePort } from '../../scripts/services/processes';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';
import { FAST_FACTS, haSteps } from '../helpers/ha';

const HOSTS = ['host-a', 'host-b', 'host-c'];
/** FAST_FACTS: a host is lost 3 s after its last heartbeat. */
const LOSS_INTERVAL_MS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * HA must never fence a healthy host: not one whose agent is only restarting outside
 * maintenance, and none when the database that carries liveness was down for longer than the
 * loss interval. This file runs its own FerretDB, so stopping it disturbs no other test.
 */
describe('HA fences no healthy host: agent restarts, database outages, a cluster cut off', () => {
  let stack: TestStack;
  let ha: ReturnType<typeof haSteps>;
  let ferret: Awaited<ReturnType<typeof startFerretDb>>;
  let dbPort: number;
  let dbDir: string;
  let guestPid: number;

  const startDb = async () => {
    ferret = await startFerretDb({ port: dbPort, dataDir: path.join(dbDir, 'data'), logDir: dbDir });
  };

  /** Whatever happened, nothing was fenced and the HA VM runs where it ran, the same process. */
  async function nothingFenced(): Promise<void> {
    expect(await stack.inventory.events.countDocuments({ operation: 'fence-host' })).toBe(0);
    for (const h of await stack.inventory.hosts.find({}).toArray()) expect(h.fencedAt ?? null).toBeNull();
    expect(qemuOn(stack.config, 'host-c').find('db')?.pid).toBe(guestPid);
    expect(hostsRunning(stack.config, 'db')).toEqual(['host-c']);
    expect(await stack.inventory.vms.findOne({ _id: 'db' })).toMatchObject({
      state: 'running',
      host: 'host-c',
    });
  }

  beforeAll(async () => {
    dbPort = await findFreePort();
    dbDir = path.join(process.env.VIRTFLOW_TEST_RUN_DIR!, 'fencing-safety-db');
    fs.mkdirSync(dbDir, { recursive: true });
    await startDb();
    stack = await TestStack.create('fencing-safety', { MONGODB_URI: ferret.uri });
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(HOSTS, FAST_FACTS);
    await importGuestImage(stack.inventory, stack.config);
    ha = haSteps(stack);
    await ha.createOn('db', 'host-c', 10);
    guestPid = qemuOn(stack.config, 'host-c').find('db')!.pid;
  });
  afterAll(async () => {
    await stack.stop();
    await ferret.process.stop();
  });

  test('an agent restarted outside maintenance, with an HA VM on its host: nothing is fenced', async () => {
    await stack.agents.get('host-c')!.stop();
    expect((await stack.inventory.hosts.findOne({ _id: 'host-c' }))?.state).toBe('down');
    // Reconcile passes go on for longer than the loss interval while the agent is away.
    const away = Date.now() + 2 * LOSS_INTERVAL_MS;
    while (Date.now() < away) expect((await ha.pass()).lostHosts).toEqual([]);
    await stack.startAgent('host-c', FAST_FACTS);
    expect((await ha.pass()).lostHosts).toEqual([]);
    await nothingFenced();
  });

  test('the database down for twice the loss interval, then back: nothing is fenced', async () => {
    await ferret.process.stop();
    // A pass that begins during the outage runs on into the recovery, as a scheduled one would.
    const during = (await auditOperations(stack.client, stack.config).run()).result();
    await sleep(2 * LOSS_INTERVAL_MS + 2000);
    await startDb();
    expect((await during).lostHosts).toEqual([]);
    expect((await ha.pass()).lostHosts).toEqual([]);
    await nothingFenced();
  });

  test('most of a cluster looking lost at once is left to an operator, and reported until it answers again', async () => {
    const frozen = ['host-a', 'host-b'].map((h) => stack.agents.get(h)!);
    for (const a of frozen) ha.freeze(a);
    try {
      await sleep(LOSS_INTERVAL_MS + 1000);
      expect((await ha.pass()).lostHosts).toEqual([]);
      const drift = await stack.inventory.drift.findOne({ kind: 'mass-host-loss' });
      expect(drift).toMatchObject({ state: 'open', subject: 'cluster/local' });
      expect(drift?.message).toMatch(/^2 of 3 hosts of cluster local look lost at once \(more than 50%\)/);
    } finally {
      for (const a of frozen) a.process.child.kill('SIGCONT');
    }
    await sleep(2000);
    await ha.pass();
    expect(await stack.inventory.drift.findOne({ kind: 'mass-host-loss' })).toMatchObject({
      state: 'resolved',
    });
    await nothingFenced();
  });
});
