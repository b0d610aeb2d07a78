import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { createBackupPolicyActivities } from '../../activities/controller/backup-policy-activities';
import { vmOperations } from '../../client/vm-operations';
import { dataPaths } from '../../domain/config';
import { apiHarness } from '../helpers/api-harness';
import type { TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

/**
 * The fleet's resources through the API, and what of them belongs to a project: hosts taken out
 * of service and back, backup policies and restores per project, backups and drift a page at a
 * time, reconciliation passes, rolling patches steered by a fleet admin, and images uploaded to
 * the fleet or to a project. On simulated hosts, as test/api/api-access.
 */
describe('API: hosts, backups, policies, rollouts and images', () => {
  const api = apiHarness('api-fleet', {
    admin: [{ project: '*', role: 'admin' }],
    'adm-a': [{ project: 'team-a', role: 'admin' }],
    'op-a': [{ project: 'team-a', role: 'operator' }],
    'view-a': [{ project: 'team-a', role: 'viewer' }],
    'op-b': [{ project: 'team-b', role: 'operator' }],
  });
  const { tokens, call, streamed, createVm } = api;
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    ({ stack, base } = api);
    // On the first host, so that taking it out of service has VMs to move.
    await createVm('op-a', 'a-one', 'team-a', 'sim-0001');
    await createVm('op-a', 'a-two', 'team-a', 'sim-0001');
    await createVm('op-b', 'b-one', 'team-b', 'sim-0001');
  }, 180_000);

  test('backup policies belong to a project: its admin makes them over its VMs only, its operators run them, no other project sees them', async () => {
    const nightly = {
      name: 'a-nightly',
      project: 'team-a',
      vmIds: ['a-one'],
      schedule: { cron: '0 3 * * *' },
    };
    const made = await call('adm-a', 'POST', '/v1/backup-policies', nightly);
    expect(made).toMatchObject({ status: 201, body: { name: 'a-nightly', project: 'team-a', paused: 'no' } });
    expect(made.body.scheduleId).toBe('backup-policy/a-nightly');
    // Another project's VM, a fleet policy, or an operator's create: refused, nothing made.
    const foreign = await call('adm-a', 'POST', '/v1/backup-policies', {
      ...nightly,
      name: 'x1',
      vmIds: ['b-one'],
    });
    expect(foreign).toMatchObject({ status: 400, body: { field: 'vmIds' } });
    expect(foreign.body.message).toMatch(/VM b-one is in project team-b, not team-a/);
    const fleet = await call('adm-a', 'POST', '/v1/backup-policies', {
      ...nightly,
      name: 'x2',
      project: undefined,
    });
    expect(fleet.status).toBe(403);
    expect((await call('op-a', 'POST', '/v1/backup-policies', { ...nightly, name: 'x3' })).status).toBe(403);
    expect(await stack.inventory.backupPolicies.countDocuments({ _id: { $in: ['x1', 'x2', 'x3'] } })).toBe(0);

    const names = async (who: string) =>
      ((await call(who, 'GET', '/v1/backup-policies')).body as { name: string }[]).map((p) => p.name);
    expect(await names('view-a')).toContain('a-nightly');
    expect(await names('op-b')).not.toContain('a-nightly');
    expect((await call('op-b', 'GET', '/v1/backup-policies/a-nightly')).status).toBe(404);
    expect((await call('op-b', 'POST', '/v1/backup-policies/a-nightly/pause', {})).status).toBe(404);
    expect((await call('view-a', 'POST', '/v1/backup-policies/a-nightly/pause', {})).status).toBe(403);
    const paused = await call('op-a', 'POST', '/v1/backup-policies/a-nightly/pause', { note: 'window' });
    expect(paused).toMatchObject({ status: 200, body: { paused: 'yes' } });
    expect((await call('op-a', 'POST', '/v1/backup-policies/a-nightly/resume', {})).body.paused).toBe('no');
    // Only an admin changes it, and never its project.
    expect(
      (await call('op-a', 'PUT', '/v1/backup-policies/a-nightly', { overlap: 'buffer-one' })).status,
    ).toBe(403);
    const changed = await call('adm-a', 'PUT', '/v1/backup-policies/a-nightly', { overlap: 'buffer-one' });
    expect(changed).toMatchObject({
      status: 200,
      body: { spec: { overlap: 'buffer-one', project: 'team-a' } },
    });
    expect((await call('adm-a', 'PUT', '/v1/backup-policies/a-nightly', { project: 'team-b' })).status).toBe(
      400,
    );

    // A project's policy by labels selects only its project's VMs when it runs.
    const activities = createBackupPolicyActivities(stack.inventory, async () => stack.client);
    const page = await activities.policyVmPage({
      selector: { vmLabels: {}, project: 'team-a' },
      run: 'test-selection',
      limit: 1000,
    });
    const teamA = await stack.inventory.vms.find({ project: 'team-a' }).sort({ _id: 1 }).toArray();
    expect(page.vmIds).toEqual(teamA.map((v) => v._id));
    expect(page.vmIds.length).toBeGreaterThan(0);

    expect((await call('adm-a', 'DELETE', '/v1/backup-policies/a-nightly')).status).toBe(200);
    expect((await call('adm-a', 'GET', '/v1/backup-policies/a-nightly')).status).toBe(404);
    await expect(stack.client.schedule.getHandle('backup-policy/a-nightly').describe()).rejects.toThrow();

    // A restore goes into the backup's project, as an operator there; another project's backup
    // is not found. (Simulated hosts take no backups: this one is catalogued by hand, and the
    // restore fails at the host, rolled back, after the API and the workflow took it.)
    const bOne = (await stack.inventory.vms.findOne({ _id: 'b-one' }))!;
    const now = new Date();
    await stack.inventory.backups.insertOne({
      _id: 'b-one-backup',
      createdAt: now,
      updatedAt: now,
      revision: 1,
      vmId: 'b-one',
      host: bOne.host!,
      kind: 'full',
      state: 'good',
      chainId: 'b-one-backup',
      parentId: null,
      bitmap: 'vf-x',
      path: '/nowhere/b-one-backup.qcow2',
      consistency: 'crash-consistent',
      vm: {
        image: bOne.image,
        memoryMiB: bOne.memoryMiB,
        vcpus: bOne.vcpus,
        guest: bOne.guest,
        project: 'team-b',
      },
      virtualSizeBytes: 1 << 30,
      startedAt: now,
      protected: false,
    });
    expect((await call('op-a', 'POST', '/v1/backups/b-one-backup/restore', { vmId: 'r-1' })).status).toBe(
      404,
    );
    expect((await call('op-a', 'POST', '/v1/backups/nope/restore', { vmId: 'r-1' })).status).toBe(404);
    const restore = await call('op-b', 'POST', '/v1/backups/b-one-backup/restore', { vmId: 'r-1', bogus: 1 });
    expect(restore).toMatchObject({ status: 400, body: { error: 'ValidationError' } });
    const restoring = await call('op-b', 'POST', '/v1/backups/b-one-backup/restore', { vmId: 'r-1' });
    expect(restoring).toMatchObject({ status: 202, body: { workflowId: 'vm/r-1' } });
    const run = stack.client.workflow.getHandle('vm/r-1', restoring.body.runId);
    await expect(run.result()).rejects.toThrow();
    const described = await run.describe();
    expect(described.memo).toMatchObject({ actor: 'token:op-b', project: 'team-b' });
    expect(await stack.inventory.vms.countDocuments({ _id: 'r-1' })).toBe(0);
  }, 120_000);

  test('a fleet admin takes a host out of service and back through the API, followed at its operation route', async () => {
    const follow = async (progressUrl: string) =>
      until(`${progressUrl} to end`, async () => {
        const op = await call('admin', 'GET', progressUrl);
        return op.body.status !== 'RUNNING' && op.body;
      });
    const holding = await stack.inventory.vms.find({ host: 'sim-0001' }).toArray();
    const entered = await call('admin', 'POST', '/v1/hosts/sim-0001/maintenance/enter', { maxParallel: 4 });
    expect(entered).toMatchObject({
      status: 202,
      body: { workflowId: 'host/sim-0001', progressUrl: '/v1/hosts/sim-0001/operation' },
    });
    // Followed as Server-Sent Events, as a VM's operation is: progress, then its end.
    const events = await streamed('view-a', entered.body.progressUrl);
    expect(events.slice(0, -1).every((e) => e.name === 'progress')).toBe(true);
    const done = events.at(-1)!.data;
    expect(events.at(-1)!.name).toBe('end');
    expect(done).toMatchObject({ type: 'enterMaintenance', status: 'COMPLETED', actor: 'token:admin' });
    expect(done.result.moved.length).toBeGreaterThan(0);
    expect(done.result.moved.map((m: { vmId: string }) => m.vmId).sort()).toEqual(
      holding
        .filter((v) => v.state === 'running')
        .map((v) => v._id)
        .sort(),
    );
    expect(await stack.inventory.vms.countDocuments({ host: 'sim-0001', state: 'running' })).toBe(0);
    const shown = await call('view-a', 'GET', '/v1/hosts/sim-0001');
    expect(shown.body).toMatchObject({ hostId: 'sim-0001', maintenance: 'in-maintenance' });
    expect(shown.body.fence).toBeUndefined();
    // A project's reader sees only its own VMs on a host.
    const status = await call('view-a', 'GET', '/v1/hosts/sim-0002/status');
    const named = (status.body.vms as string[]).map((v) => v.split(' ')[0]);
    const visible = await stack.inventory.vms.find({ host: 'sim-0002', project: 'team-a' }).toArray();
    expect(named.sort()).toEqual(visible.map((v) => v._id).sort());

    const exited = await call('admin', 'POST', '/v1/hosts/sim-0001/maintenance/exit', { migrateBack: true });
    expect(exited.status).toBe(202);
    expect(await follow(exited.body.progressUrl)).toMatchObject({
      type: 'exitMaintenance',
      status: 'COMPLETED',
    });
    expect((await call('op-a', 'GET', '/v1/hosts/sim-0001')).body.maintenance).toBe('no');
    const bad = await call('admin', 'POST', '/v1/hosts/sim-0001/maintenance/resolve', { action: 'later' });
    expect(bad).toMatchObject({ status: 400, body: { field: 'action' } });
    expect((await call('admin', 'POST', '/v1/hosts/nowhere/maintenance/enter', {})).status).toBe(404);
  }, 120_000);

  test('backups and drift come a page at a time, newest first, each page naming the next, none twice', async () => {
    // Catalogued by hand (simulated hosts take no backups): seven per project, two of them
    // started in the same millisecond, so the id must break the tie.
    const t0 = Date.now() - 3_600_000;
    const a1 = (await stack.inventory.vms.findOne({ _id: 'a-one' }))!;
    for (const [project, vmId] of [
      ['team-a', 'a-one'],
      ['team-b', 'b-one'],
    ] as const)
      for (let i = 0; i < 7; i++) {
        const at = new Date(t0 + (i === 6 ? 5 : i) * 1000);
        await stack.inventory.backups.insertOne({
          _id: `page-${project}-${i}`,
          createdAt: at,
          updatedAt: at,
          revision: 1,
          vmId,
          host: 'sim-0001',
          kind: 'full',
          state: 'good',
          chainId: `page-${project}-${i}`,
          parentId: null,
          bitmap: 'vf-x',
          path: `/nowhere/${i}.qcow2`,
          consistency: 'crash-consistent',
          vm: { image: a1.image, memoryMiB: 128, vcpus: 1, guest: a1.guest, project },
          virtualSizeBytes: 1 << 30,
          startedAt: at,
          protected: false,
        });
      }
    /** Every page of a listing from its first, by the links, as the CLI follows them. */
    const pages = async (who: string, url: string) => {
      const seen: string[][] = [];
      for (let next: string | undefined = url; next;) {
        const res = await call(who, 'GET', next);
        expect(res.status).toBe(200);
        seen.push(res.body.map((x: { backupId?: string; id?: string }) => x.backupId ?? x.id));
        next = /<([^>]+)>; rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
      }
      return seen;
    };
    const aPages = await pages('view-a', '/v1/backups?vm=a-one&limit=2');
    expect(aPages.map((p) => p.length)).toEqual([2, 2, 2, 1]);
    expect(aPages.flat()).toEqual([
      'page-team-a-6',
      'page-team-a-5',
      'page-team-a-4',
      'page-team-a-3',
      'page-team-a-2',
      'page-team-a-1',
      'page-team-a-0',
    ]);
    // A project's reader pages through its own backups only.
    const everyB = (await pages('op-b', '/v1/backups?limit=3')).flat();
    expect(everyB.filter((id) => id.startsWith('page-'))).toHaveLength(7);
    expect(everyB.some((id) => id.startsWith('page-team-a'))).toBe(false);

    for (let i = 0; i < 5; i++) {
      const at = new Date(t0 + i * 1000);
      await stack.inventory.drift.insertOne({
        _id: `page-drift-${i}`,
        createdAt: at,
        updatedAt: at,
        revision: 1,
        kind: 'orphan-disk',
        hostId: 'sim-0001',
        subject: `disk ${i}`,
        message: 'left behind',
        state: 'open',
        fix: `virtflow audit fix page-drift-${i}`,
        lastSeenAt: at,
      });
    }
    const drift = (await pages('admin', '/v1/drift?limit=2')).flat().filter((id) => id.startsWith('page-'));
    expect(drift).toEqual(['page-drift-4', 'page-drift-3', 'page-drift-2', 'page-drift-1', 'page-drift-0']);
    // A reconciliation pass on demand, followed to its end: it looks at every host.
    const pass = await call('admin', 'POST', '/v1/reconcile', {});
    expect(pass).toMatchObject({
      status: 202,
      body: { progressUrl: expect.stringMatching(/^\/v1\/reconcile\/fleet-/) },
    });
    const ended = await until('the reconciliation pass to end', async () => {
      const run = await call('admin', 'GET', pass.body.progressUrl);
      return run.body.status !== 'RUNNING' && run.body;
    });
    expect(ended).toMatchObject({ type: 'reconcileFleet', status: 'COMPLETED', actor: 'token:admin' });
    expect(Object.keys(ended.result.hosts).sort()).toEqual(['sim-0001', 'sim-0002']);
    expect((await call('op-a', 'GET', pass.body.progressUrl)).status).toBe(403);
    const unknown = await call('admin', 'GET', '/v1/drift?after=nothing-like-it');
    expect(unknown).toMatchObject({ status: 400, body: { field: 'after' } });
    expect((await call('admin', 'GET', '/v1/backups?limit=5000')).body.field).toBe('query.limit');
  });

  test('a rolling patch is started and steered by a fleet admin, read by any grant, and records who', async () => {
    // A patch the catalogue does not have fails on every host: the rollout halts at once.
    const started = await call('admin', 'POST', '/v1/rollouts', {
      name: 'api-roll',
      patch: 'not-in-catalogue',
      hosts: ['sim-0001', 'sim-0002'],
      canaryHosts: 0,
      order: 'given',
      retriesPerHost: 0,
    });
    expect(started).toMatchObject({ status: 202, body: { progressUrl: '/v1/rollouts/api-roll' } });
    /** The rollout as a viewer reads it once it has halted with its hosts in `states`. */
    const haltedWith = (states: string[]) =>
      until(
        `the rollout halted with ${states.join(', ')}`,
        async () => {
          const now = (await call('view-a', 'GET', '/v1/rollouts/api-roll')).body;
          const hosts = now.progress?.hosts?.map((h: { state: string }) => h.state);
          return now.progress?.phase === 'halted' && JSON.stringify(hosts) === JSON.stringify(states) && now;
        },
        60_000,
      );
    const first = await haltedWith(['failed', 'pending']);
    expect(first).toMatchObject({ status: 'RUNNING', actor: 'token:admin' });
    expect(first.progress.hosts[0]).toMatchObject({ hostId: 'sim-0001', state: 'failed' });
    expect(first.progress.hosts[0].reason).toMatch(/no patch named "not-in-catalogue"/);

    expect((await call('op-a', 'POST', '/v1/rollouts/api-roll/hosts/sim-0001/skip', {})).status).toBe(403);
    const early = await call('admin', 'POST', '/v1/rollouts/api-roll/resume', {});
    expect(early).toMatchObject({
      status: 409,
      body: { message: expect.stringMatching(/skip or retry them first/) },
    });
    const unknown = await call('admin', 'POST', '/v1/rollouts/api-roll/hosts/sim-0009/skip', {});
    expect(unknown).toMatchObject({
      status: 409,
      body: { message: expect.stringMatching(/not part of this rollout/) },
    });
    expect((await call('admin', 'POST', '/v1/rollouts/api-roll/hosts/sim-0001/retry', {})).status).toBe(200);
    expect((await call('admin', 'POST', '/v1/rollouts/api-roll/resume', {})).status).toBe(200);
    // A retry counts its attempts afresh (the host was pending again at once, so this failed
    // host is the retry's). It fails again; the operator skips it and gives up on the patch.
    const second = await haltedWith(['failed', 'pending']);
    expect(second.progress.hosts[0]).toMatchObject({ attempts: 1, reason: first.progress.hosts[0].reason });
    expect((await call('admin', 'POST', '/v1/rollouts/api-roll/hosts/sim-0001/skip', {})).body).toEqual({
      message: 'sim-0001 skipped',
    });
    expect((await call('admin', 'POST', '/v1/rollouts/api-roll/abort', {})).status).toBe(200);
    await stack.client.workflow.getHandle('rollout/api-roll').result();
    const done = await call('view-a', 'GET', '/v1/rollouts/api-roll');
    expect(done.body).toMatchObject({ status: 'COMPLETED', progress: { phase: 'aborted' } });
    expect(done.body.progress.hosts.map((h: { state: string }) => h.state)).toEqual(['skipped', 'pending']);
    // A control of a rollout that has ended is refused with its reason, not failed.
    const late = await call('admin', 'POST', '/v1/rollouts/api-roll/resume', {});
    expect(late).toMatchObject({ status: 409, body: { message: 'rollout api-roll is completed' } });
    const list = await call('op-b', 'GET', '/v1/rollouts');
    expect(list.body.map((r: { name: string }) => r.name)).toContain('api-roll');
  }, 180_000);

  test("an image streams to the repository through the API, checked as an import is; a fleet admin uploads the fleet's, a project's admin its own", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-upload-'));
    const raw = path.join(dir, 'tiny.raw');
    fs.writeFileSync(raw, Buffer.alloc(4 * 1024 * 1024, 0x5a));
    // A raw image must look like a disk (an import refuses one with no partition table).
    await new Promise<void>((resolve, reject) => {
      const child = execFile('sfdisk', ['-q', raw], (err) => (err ? reject(err) : resolve()));
      child.stdin!.end('label: dos\nstart=2048, type=83\n');
    });
    const upload = (who: string, url: string, body: Buffer | fs.ReadStream) =>
      fetch(`${base}${url}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${tokens[who]}`, 'content-type': 'application/octet-stream' },
        body: Buffer.isBuffer(body) ? body : (Readable.toWeb(body) as ReadableStream),
        duplex: 'half',
      } as RequestInit).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, string>,
      }));

    expect((await upload('op-a', '/v1/images/tiny?format=raw', fs.createReadStream(raw))).status).toBe(403);
    const made = await upload('admin', '/v1/images/tiny?format=raw&osFamily=other', fs.createReadStream(raw));
    expect(made).toMatchObject({
      status: 201,
      body: {
        name: 'tiny',
        format: 'qcow2',
        sourceFormat: 'raw',
        osFamily: 'other',
        virtualSizeBytes: 4194304,
      },
    });
    const stored = await stack.inventory.images.findOne({ _id: 'tiny' });
    expect(stored).toMatchObject({ sha256: made.body.sha256, source: 'upload:tiny' });
    // The stored image holds the bytes sent.
    const back = path.join(dir, 'back.raw');
    await new Promise<void>((resolve, reject) =>
      execFile('qemu-img', ['convert', '-O', 'raw', stored!.path, back], (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    expect(fs.readFileSync(back).equals(fs.readFileSync(raw))).toBe(true);
    const listed = await call('view-a', 'GET', '/v1/images');
    expect(listed.body.map((i: { name: string }) => i.name)).toContain('tiny');

    // A project's image: its admin uploads it, only its readers see it, only its VMs use it.
    expect((await upload('adm-a', '/v1/images/a-fleet?format=raw', fs.createReadStream(raw))).status).toBe(
      403,
    );
    const own = await upload('adm-a', '/v1/images/a-img?format=raw&project=team-a', fs.createReadStream(raw));
    expect(own).toMatchObject({ status: 201, body: { name: 'a-img', project: 'team-a' } });
    const taken = await upload(
      'adm-a',
      '/v1/images/tiny?format=raw&project=team-a',
      fs.createReadStream(raw),
    );
    expect(taken).toMatchObject({ status: 400, body: { field: 'name' } });
    expect(taken.body.message).toMatch(/exists in the fleet/);
    const names = async (who: string) =>
      ((await call(who, 'GET', '/v1/images')).body as { name: string }[]).map((i) => i.name);
    expect(await names('view-a')).toEqual(expect.arrayContaining(['a-img', 'tiny']));
    expect(await names('op-b')).not.toContain('a-img');
    expect((await call('op-b', 'GET', '/v1/images/a-img')).status).toBe(404);
    expect((await call('view-a', 'GET', '/v1/images/a-img')).body).toMatchObject({ project: 'team-a' });
    const foreign = await call('op-b', 'POST', '/v1/vms', {
      vmId: 'b-img',
      image: 'a-img',
      project: 'team-b',
    });
    expect(foreign).toMatchObject({ status: 400, body: { field: 'image' } });
    expect(foreign.body.message).toMatch(/image a-img belongs to project team-a, not team-b/);
    // Started past the API, the create's own first step refuses it as well, before anything is written.
    const direct = await vmOperations(stack.client, stack.config).create({
      vmId: 'b-img',
      image: 'a-img',
      project: 'team-b',
    });
    await expect(direct.result()).rejects.toMatchObject({ cause: { type: 'ValidationError' } });
    expect(await stack.inventory.vms.countDocuments({ _id: 'b-img' })).toBe(0);

    // What an import refuses, an upload refuses, by field, and nothing is stored.
    const lying = await upload('admin', '/v1/images/liar?format=qcow2', Buffer.alloc(65536, 1));
    expect(lying).toMatchObject({ status: 400, body: { error: 'ValidationError' } });
    const badQuery = await upload('admin', '/v1/images/odd?firmware=coreboot', Buffer.alloc(512));
    expect(badQuery).toMatchObject({ status: 400, body: { field: 'query.firmware' } });
    const empty = await upload('admin', '/v1/images/empty?format=raw', Buffer.alloc(0));
    expect(empty).toMatchObject({
      status: 400,
      body: { field: 'body', message: 'body: the image is empty' },
    });
    const json = await call('admin', 'PUT', '/v1/images/json', { bytes: 'no' });
    expect(json.status).toBe(415);
    expect(
      await stack.inventory.images.countDocuments({ _id: { $in: ['liar', 'odd', 'empty', 'json'] } }),
    ).toBe(0);
    const leftovers = fs
      .readdirSync(dataPaths(stack.config.dataDir).images)
      .filter((f) => f.startsWith('.import-'));
    expect(leftovers).toEqual([]);
  });
});
