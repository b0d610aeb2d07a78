import fs from 'node:fs';
import { backupPolicies } from '../../client/backup-policies';
import { vmOperations } from '../../client/vm-operations';
import { ValidationError } from '../../domain/errors';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { GUEST_IMAGE, importGuestImage } from '../helpers/guests';
import { until } from '../helpers/until';

describe('backup policies run as Temporal Schedules', () => {
  let stack: TestStack;
  let policies: ReturnType<typeof backupPolicies>;

  beforeAll(async () => {
    stack = await TestStack.create('backup-policies');
    await stack.startController(await bundleWorkflows());
    await stack.startAgent('host-a');
    await importGuestImage(stack.inventory, stack.config);
    await (
      await vmOperations(stack.client, stack.config).create({
        vmId: 'app',
        image: GUEST_IMAGE,
        labels: { tier: 'db' },
      })
    ).result();
    policies = backupPolicies(stack.client, stack.inventory);
  });
  afterAll(async () => {
    for (const p of await stack.inventory.backupPolicies.find({}).toArray()) await policies.delete(p._id);
    await stack.stop();
  });

  test.each([
    [
      'a bad cron expression',
      { schedule: { cron: '61 * * * *' } },
      /^schedule\.cron: is not a valid cron expression/,
    ],
    [
      'a calendar minute out of range',
      { schedule: { calendar: { minute: '75' } } },
      /^schedule\.calendar\.minute: 75 is outside 0-59/,
    ],
    [
      'two schedule kinds at once',
      { schedule: { cron: '0 * * * *', everySec: 60 } },
      /^schedule: give exactly one of cron, calendar or everySec/,
    ],
    [
      'an unknown time zone',
      { schedule: { everySec: 60, timezone: 'Mars/Olympus' } },
      /^schedule\.timezone: is not a known IANA time zone/,
    ],
    ['an unknown VM', { vmIds: ['ghost'] }, /^vmIds: no VM named "ghost"/],
    ['a negative retention', { retention: { keepDaily: -1 } }, /^retention\.keepDaily: must not be negative/],
    [
      'a fractional retention',
      { retention: { keepLast: 1.5 } },
      /^retention\.keepLast: must be a whole number/,
    ],
  ])('rejects %s before anything is created', async (_what, bad, message) => {
    const err = await policies
      .create({ name: 'bad', vmIds: ['app'], schedule: { everySec: 60 }, ...bad } as Parameters<
        typeof policies.create
      >[0])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(message);
    expect(await stack.inventory.backupPolicies.countDocuments({})).toBe(0);
    await expect(stack.client.schedule.getHandle('backup-policy/bad').describe()).rejects.toThrow();
  });

  test('a seconds-level policy runs on time, skips a trigger that overlaps a run, and prunes by retention', async () => {
    const view = await policies.create({
      name: 'nightly-db',
      vmLabels: { tier: 'db' },
      schedule: { everySec: 5 },
      retention: { keepLast: 2 },
      fullEvery: 2,
    });
    expect(view.schedule?.spec.intervals?.[0].every).toBe(5000);
    expect(view.schedule?.policies.overlap).toBe('SKIP');
    // Creating the same policy again is a no-op.
    await policies.create({
      name: 'nightly-db',
      vmLabels: { tier: 'db' },
      schedule: { everySec: 5 },
      retention: { keepLast: 2 },
      fullEvery: 2,
    });

    await until('two scheduled runs', async () => {
      const d = await stack.client.schedule.getHandle('backup-policy/nightly-db').describe();
      return (
        d.info.recentActions.length >= 2 &&
        (await stack.inventory.backups.countDocuments({ vmId: 'app', state: { $in: ['good', 'pruned'] } })) >=
          2
      );
    });

    // A trigger while a run is in flight is skipped (overlap: skip). A backup of an idle guest can
    // finish before a second trigger arrives, so host-a's agent is frozen (SIGSTOP) meanwhile:
    // the run in flight cannot end until the test has seen the skip. Its guest runs on, untouched.
    const schedule = stack.client.schedule.getHandle('backup-policy/nightly-db');
    const skippedBefore = (await schedule.describe()).info.numActionsSkippedOverlap;
    const agent = stack.agents.get('host-a')!.process.child;
    agent.kill('SIGSTOP');
    try {
      await policies.trigger('nightly-db');
      await until('a run in flight', async () => (await schedule.describe()).info.runningActions.length > 0);
      await policies.trigger('nightly-db');
      await until(
        'a skipped overlapping trigger',
        async () => (await schedule.describe()).info.numActionsSkippedOverlap > skippedBefore,
      );
    } finally {
      agent.kill('SIGCONT');
    }

    // A new chain every two backups; retention keeps the newest two (and what they rest on), so
    // older chains go, from the catalogue and from disk.
    await until(
      'a pruned backup',
      async () => (await stack.inventory.backups.countDocuments({ vmId: 'app', state: 'pruned' })) >= 1,
    );
    await policies.pause('nightly-db', 'test over');
    await until(
      'no run in flight',
      async () => (await stack.inventory.backups.countDocuments({ state: 'running' })) === 0,
    );
    const good = await stack.inventory.backups
      .find({ vmId: 'app', state: 'good' })
      .sort({ finishedAt: -1 })
      .toArray();
    const fulls = good.filter((b) => b.kind === 'full');
    expect(good.length).toBeLessThanOrEqual(2 + fulls.length);
    for (const b of good) if (b.parentId) expect(good.map((g) => g._id)).toContain(b.parentId);
    for (const p of await stack.inventory.backups.find({ vmId: 'app', state: 'pruned' }).toArray()) {
      expect(fs.existsSync(p.path)).toBe(false);
    }
    const runs = await stack.inventory.events
      .find({ operation: 'scheduled-backup', subject: 'backup-policy/nightly-db' })
      .toArray();
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(runs.every((r) => r.outcome === 'completed')).toBe(true);
  });

  test('pause, resume and delete go through the Schedule API', async () => {
    await policies.create({
      name: 'weekly',
      vmIds: ['app'],
      schedule: { cron: '0 3 * * 0', timezone: 'Europe/Paris' },
    });
    await policies.pause('weekly', 'maintenance freeze');
    let d = (await policies.show('weekly')).schedule!;
    expect(d.state.paused).toBe(true);
    expect(d.state.note).toBe('maintenance freeze');
    await policies.resume('weekly');
    d = (await policies.show('weekly')).schedule!;
    expect(d.state.paused).toBe(false);
    await policies.delete('weekly');
    expect(await stack.inventory.backupPolicies.findOne({ _id: 'weekly' })).toBeNull();
    await expect(stack.client.schedule.getHandle('backup-policy/weekly').describe()).rejects.toThrow();
  });
});
