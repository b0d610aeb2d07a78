import { execFile } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { vmOperations } from '../../client/vm-operations';
import { searchAttributes } from '../../domain/names';
import { buildApiServer } from '../../server/app';
import { apiHarness } from '../helpers/api-harness';
import type { TestStack } from '../helpers/test-stack';

/**
 * The API against the real controller, Temporal and FerretDB, on simulated hosts (the hypervisor
 * is not what these tests are about): who may do what, project isolation, quotas, the actor on
 * every run and audit event, hostile HTTP refused with the right status and no state change, and
 * the CLI through the API. test/api/api-fleet holds the fleet's resources and their projects.
 */
describe('API: tokens, roles, projects and hostile input', () => {
  const api = apiHarness('api-access', {
    admin: [{ project: '*', role: 'admin' }],
    'op-a': [{ project: 'team-a', role: 'operator' }],
    'view-a': [{ project: 'team-a', role: 'viewer' }],
    'op-b': [{ project: 'team-b', role: 'operator' }],
    // The quota tests' projects.
    'op-q': [{ project: 'team-q', role: 'operator' }],
    'op-d': [{ project: 'team-d', role: 'operator' }],
    expired: [{ project: 'team-a', role: 'admin' }],
    revoked: [{ project: 'team-a', role: 'admin' }],
  });
  const { tokens, call, streamed, createVm } = api;
  let stack: TestStack;
  let base: string;

  beforeAll(async () => {
    ({ stack, base } = api);
    await stack.inventory.apiTokens.updateOne(
      { name: 'expired' },
      { $set: { expiresAt: new Date(Date.now() - 1000) } },
    );
    const revokedId = /^vft_([0-9a-f]{16})_/.exec(tokens.revoked)![1];
    expect((await call('admin', 'DELETE', `/v1/tokens/${revokedId}`)).status).toBe(200);

    await createVm('op-a', 'a-one', 'team-a');
    await createVm('op-a', 'a-two', 'team-a');
    await createVm('op-b', 'b-one', 'team-b');
  }, 180_000);

  test('each role against each route: allowed, forbidden (403), unauthenticated (401)', async () => {
    // [route, expected status for: no token, view-a, op-a, op-b, admin]
    const matrix: [string, string, unknown, (number | 'skip')[]][] = [
      ['GET', '/v1/whoami', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/hosts', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/hosts/sim-0001', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/hosts/sim-0001/status', undefined, [401, 200, 200, 200, 200]],
      ['POST', '/v1/hosts/sim-0001/maintenance/exit', {}, [401, 403, 403, 403, 'skip']],
      ['POST', '/v1/hosts/sim-0001/fence', {}, [401, 403, 403, 403, 'skip']],
      ['GET', '/v1/networks', undefined, [401, 200, 200, 200, 200]],
      ['POST', '/v1/networks', { name: 'n-x', cidr: '10.99.0.0/24' }, [401, 403, 403, 403, 201]],
      ['GET', '/v1/networks/n-x', undefined, [401, 200, 200, 200, 200]],
      ['DELETE', '/v1/networks/n-x', undefined, [401, 403, 403, 403, 200]],
      ['GET', '/v1/vms', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/vms/a-one', undefined, [401, 200, 200, 404, 200]],
      ['GET', '/v1/vms/a-one/operation', undefined, [401, 200, 200, 404, 200]],
      ['GET', '/v1/tokens', undefined, [401, 403, 403, 403, 200]],
      ['GET', '/v1/rollouts', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/backups', undefined, [401, 200, 200, 200, 200]],
      // Each caller reads the policies of its projects; drift spans projects: a fleet grant reads it.
      ['GET', '/v1/backup-policies', undefined, [401, 200, 200, 200, 200]],
      ['GET', '/v1/drift', undefined, [401, 403, 403, 403, 200]],
      // What a guest prints is an operator's to read, as a console is.
      ['GET', '/v1/vms/a-one/console', undefined, [401, 403, 200, 404, 200]],
      [
        'POST',
        '/v1/rollouts',
        { name: 'nope', patch: 'p1', hosts: ['sim-0001'] },
        [401, 403, 403, 403, 'skip'],
      ],
      ['POST', '/v1/rollouts/nope/pause', {}, [401, 403, 403, 403, 404]],
      [
        'POST',
        '/v1/rollouts/forecast',
        { name: 'f', patch: 'security-2026-11', hosts: ['sim-0001'] },
        [401, 403, 403, 403, 'skip'],
      ],
      ['POST', '/v1/vms/b-one/backup', {}, [401, 404, 404, 'skip', 'skip']],
      ['POST', '/v1/vms/b-one/nics', { network: 'nowhere' }, [401, 404, 404, 'skip', 'skip']],
      ['DELETE', '/v1/vms/b-one/nics/nowhere', undefined, [401, 404, 404, 'skip', 'skip']],
      ['POST', '/v1/vms/b-one/ha', { priority: 1 }, [401, 404, 404, 'skip', 'skip']],
      [
        'POST',
        '/v1/vms/b-one/backups/prune',
        { retention: { keepLast: 1 } },
        [401, 404, 404, 'skip', 'skip'],
      ],
      ['GET', '/v1/backups/nope', undefined, [401, 404, 404, 404, 404]],
      ['POST', '/v1/reconcile', {}, [401, 403, 403, 403, 'skip']],
      [
        'POST',
        '/v1/tokens',
        { name: 'made', grants: [{ project: 'team-a', role: 'viewer' }] },
        [401, 403, 403, 403, 201],
      ],
      // A create names its project: a caller with no grant there is forbidden, not told "not found".
      [
        'POST',
        '/v1/vms',
        { vmId: 'm-x', image: 'sim-image', project: 'team-a' },
        [401, 403, 'skip', 403, 'skip'],
      ],
      ['POST', '/v1/vms/a-one/stop', { gracefulTimeoutSec: 0 }, [401, 403, 202, 404, 'skip']],
      ['POST', '/v1/vms/a-two/stop', { gracefulTimeoutSec: 0 }, [401, 403, 'skip', 404, 202]],
      ['DELETE', '/v1/vms/b-one', undefined, [401, 404, 404, 'skip', 'skip']],
    ];
    const callers = [undefined, 'view-a', 'op-a', 'op-b', 'admin'];
    const seen: string[] = [];
    for (const [method, path, body, expected] of matrix)
      for (const [i, who] of callers.entries()) {
        if (expected[i] === 'skip') continue;
        const res = await call(who, method, path, body);
        seen.push(`${method} ${path} as ${who ?? 'nobody'}: ${res.status}`);
        if (res.status === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
    const want = matrix.flatMap(([method, path, , expected]) =>
      callers.flatMap((who, i) =>
        expected[i] === 'skip' ? [] : [`${method} ${path} as ${who ?? 'nobody'}: ${expected[i]}`],
      ),
    );
    expect(seen).toEqual(want);
    // The stops that were allowed ran to the end, and nothing refused changed anything.
    for (const vmId of ['a-one', 'a-two']) await stack.client.workflow.getHandle(`vm/${vmId}`).result();
    expect((await stack.inventory.vms.findOne({ _id: 'a-one' }))?.state).toBe('stopped');
    expect((await stack.inventory.vms.findOne({ _id: 'b-one' }))?.state).toBe('running');
    expect(await stack.inventory.vms.countDocuments({ _id: 'm-x' })).toBe(0);
  }, 180_000);

  test("a project's token sees and touches only its project's VMs", async () => {
    const ids = async (who: string) =>
      (await call(who, 'GET', '/v1/vms')).body.map((v: { vmId: string }) => v.vmId);
    expect(await ids('op-a')).toEqual(['a-one', 'a-two']);
    expect(await ids('view-a')).toEqual(['a-one', 'a-two']);
    expect(await ids('op-b')).toEqual(['b-one']);
    expect(await ids('admin')).toEqual(['a-one', 'a-two', 'b-one']);
    const refused = await call('op-a', 'POST', '/v1/vms/b-one/migrate', {});
    expect(refused.status).toBe(404);
    expect(refused.body.message).toBe('vm "b-one" does not exist');
  });

  test('every run and audit event records who started it', async () => {
    const run = await stack.client.workflow.getHandle('vm/b-one').describe();
    expect(run.memo).toMatchObject({ actor: 'token:op-b' });
    expect(run.typedSearchAttributes.get(searchAttributes.actor)).toBe('token:op-b');
    const opB = /^vft_([0-9a-f]{16})_/.exec(tokens['op-b'])![1];
    const events = await stack.inventory.events.find({ workflowId: 'vm/b-one', runId: run.runId }).toArray();
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(e).toMatchObject({ actor: 'token:op-b', tokenId: opB });
    // The VM's operation says so too, with its link to the Temporal UI.
    const op = await call('op-b', 'GET', '/v1/vms/b-one/operation');
    expect(op.body).toMatchObject({ type: 'createVm', status: 'COMPLETED', actor: 'token:op-b' });
    expect(op.body.temporalUrl).toContain(encodeURIComponent('vm/b-one'));
  });

  test("an operation's progress streams as Server-Sent Events until it ends", async () => {
    const started = await call('op-a', 'POST', '/v1/vms/a-one/start', {});
    expect(started.status).toBe(202);
    const events = await streamed('op-a', started.body.progressUrl);
    const end = events.at(-1)!;
    expect(end).toMatchObject({ name: 'end', data: { type: 'startVm', status: 'COMPLETED' } });
    expect(events.slice(0, -1).every((e) => e.name === 'progress' && e.data.status === 'RUNNING')).toBe(true);
    expect((await stack.inventory.vms.findOne({ _id: 'a-one' }))?.state).toBe('running');
  });

  test('hostile HTTP is refused with the right status and changes nothing', async () => {
    const vmsBefore = await stack.inventory.vms.find({}).sort({ _id: 1 }).toArray();
    const tokensBefore = await stack.inventory.apiTokens.countDocuments({});
    const raw = async (init: RequestInit & { path: string }) => {
      const res = await fetch(`${base}${init.path}`, init);
      return { status: res.status, body: await res.json().catch(() => undefined) };
    };
    const auth = { authorization: `Bearer ${tokens.admin}` };
    const json = { ...auth, 'content-type': 'application/json' };

    const oversized = await raw({
      path: '/v1/vms',
      method: 'POST',
      headers: json,
      body: JSON.stringify({ vmId: 'big', image: 'sim-image', userData: 'x'.repeat(300 * 1024) }),
    });
    expect(oversized.status).toBe(413);
    const wrongType = await raw({
      path: '/v1/vms',
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/plain' },
      body: 'vmId=x',
    });
    expect(wrongType.status).toBe(415);
    const badJson = await raw({ path: '/v1/vms', method: 'POST', headers: json, body: '{"vmId": ' });
    expect(badJson.status).toBe(400);
    const unknownField = await call('admin', 'POST', '/v1/vms', {
      vmId: 'u-1',
      image: 'sim-image',
      owner: 'x',
    });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.message).toMatch(/owner/);
    const badField = await call('admin', 'POST', '/v1/vms', {
      vmId: 'u-2',
      image: 'sim-image',
      memoryMiB: 1,
    });
    expect(badField).toMatchObject({ status: 400, body: { error: 'ValidationError', field: 'memoryMiB' } });
    for (const path of ['/v1/vms/..%2F..%2Fetc%2Fpasswd', '/v1/vms/A-ONE', '/v1/vms/a%00one/stop']) {
      const res = await call(
        'admin',
        path.endsWith('stop') ? 'POST' : 'GET',
        path,
        path.endsWith('stop') ? {} : undefined,
      );
      expect([path, res.status, res.body.field]).toEqual([path, 400, 'vmId']);
    }
    expect((await call('expired', 'GET', '/v1/whoami')).status).toBe(401);
    expect((await call('revoked', 'GET', '/v1/whoami')).status).toBe(401);
    const forged = tokens.admin.slice(0, -4) + 'AAAA';
    const res = await fetch(`${base}/v1/whoami`, { headers: { authorization: `Bearer ${forged}` } });
    expect(res.status).toBe(401);
    // A CR inside a header value (header injection) never reaches a handler: the parser refuses it.
    const reply = await new Promise<string>((resolve, reject) => {
      const url = new URL(base);
      const socket = net.connect(Number(url.port), url.hostname, () =>
        socket.write(
          `GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tokens.admin}\rX-Role: admin\r\n\r\n`,
        ),
      );
      let data = '';
      socket.on('data', (d) => (data += d));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);

    expect(await stack.inventory.vms.find({}).sort({ _id: 1 }).toArray()).toEqual(vmsBefore);
    expect(await stack.inventory.apiTokens.countDocuments({})).toBe(tokensBefore);
  });

  test('a quota of 5 VMs: of 20 concurrent creates exactly 5 succeed, the rest are refused by name', async () => {
    const quota = await call('admin', 'PUT', '/v1/projects/team-q/quota', { vms: 5, vcpus: 100 });
    expect(quota).toMatchObject({ status: 200, body: { quota: { vms: 5, vcpus: 100 } } });
    expect((await call('op-a', 'PUT', '/v1/projects/team-a/quota', { vms: 50 })).status).toBe(403);

    const outcomes = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const res = await call('op-q', 'POST', '/v1/vms', {
          vmId: `q-${i}`,
          image: 'sim-image',
          project: 'team-q',
        });
        if (res.status !== 202) return `${res.status} ${res.body.error}`;
        return stack.client.workflow
          .getHandle(res.body.workflowId, res.body.runId)
          .result()
          .then(
            () => 'created',
            (err: { cause?: { type?: string } }) => `failed ${err.cause?.type}`,
          );
      }),
    );
    const tally = outcomes.reduce<Record<string, number>>((t, o) => ({ ...t, [o]: (t[o] ?? 0) + 1 }), {});
    expect(tally.created).toBe(5);
    // Refused at the API (409) or, when several passed its pre-check at once, by the create's own claim.
    console.log(`quota race: ${JSON.stringify(tally)}`);
    for (const o of Object.keys(tally))
      expect(['created', '409 QuotaExceededError', 'failed QuotaExceededError']).toContain(o);
    const inProject = await stack.inventory.vms.find({ project: 'team-q' }).toArray();
    expect(inProject).toHaveLength(5);
    expect(inProject.every((v) => v.state === 'running')).toBe(true);
    const usage = await call('op-q', 'GET', '/v1/projects/team-q');
    expect(usage.body).toMatchObject({
      quota: { vms: 5, vcpus: 100 },
      usage: { vms: 5, vcpus: 5, memoryMiB: 5 * 128 },
    });
    const sixth = await call('op-q', 'POST', '/v1/vms', {
      vmId: 'q-late',
      image: 'sim-image',
      project: 'team-q',
    });
    expect(sixth).toMatchObject({ status: 409, body: { error: 'QuotaExceededError' } });
    expect(sixth.body.message).toMatch(/vms: 5 of 5 already used/);
  }, 180_000);

  test("a disk quota counts each disk at its size: a create or a growth past it is refused, by the API and by the workflow's claim", async () => {
    const GiB = 1024 ** 3;
    expect((await call('admin', 'PUT', '/v1/projects/team-d/quota', { diskGiB: 3 })).status).toBe(200);
    const ended = (res: { body: { workflowId: string; runId: string } }) =>
      stack.client.workflow.getHandle(res.body.workflowId, res.body.runId).result();

    // The image's 1 GiB root disk and a 1 GiB data disk: 2 of the 3 GiB.
    const one = await call('op-d', 'POST', '/v1/vms', {
      vmId: 'd-one',
      image: 'sim-image',
      project: 'team-d',
      dataDisks: [GiB],
    });
    expect(one.status).toBe(202);
    await ended(one);
    expect((await call('op-d', 'GET', '/v1/vms/d-one')).body.diskBytes).toEqual([GiB, GiB]);

    const big = await call('op-d', 'POST', '/v1/vms', {
      vmId: 'd-two',
      image: 'sim-image',
      project: 'team-d',
      diskSizeBytes: 2 * GiB,
    });
    expect(big).toMatchObject({ status: 409, body: { error: 'QuotaExceededError' } });
    expect(big.body.message).toMatch(/diskGiB: needs 2 GiB, 1 GiB of 3 GiB left/);

    // A growth within the quota is recorded; one past it is refused before anything starts.
    const grow = await call('op-d', 'POST', '/v1/vms/d-one/resize-disk', { disk: 1, sizeBytes: 1.5 * GiB });
    expect(grow.status).toBe(202);
    await ended(grow);
    const past = await call('op-d', 'POST', '/v1/vms/d-one/resize-disk', { disk: 0, sizeBytes: 2 * GiB });
    expect(past).toMatchObject({ status: 409, body: { error: 'QuotaExceededError' } });
    expect(past.body.message).toMatch(/diskGiB: needs 1 GiB, 512 MiB of 3 GiB left/);
    const noDisk = await call('op-d', 'POST', '/v1/vms/d-one/resize-disk', { disk: 2, sizeBytes: 2 * GiB });
    expect(noDisk).toMatchObject({ status: 400, body: { field: 'disk' } });

    // Started past the API (as when another request took the room after its check), the
    // workflow's own claim refuses it, and the host is never asked.
    const direct = await vmOperations(stack.client, stack.config).resizeDisk({
      vmId: 'd-one',
      disk: 0,
      sizeBytes: 2 * GiB,
    });
    await expect(direct.result()).rejects.toMatchObject({ cause: { type: 'QuotaExceededError' } });
    expect((await stack.inventory.vms.findOne({ _id: 'd-one' }))!.diskBytes).toEqual([GiB, 1.5 * GiB]);
    expect((await call('op-d', 'GET', '/v1/projects/team-d')).body).toMatchObject({
      quota: { diskGiB: 3 },
      usage: { vms: 1, diskBytes: 2.5 * GiB },
    });
  }, 120_000);

  test('the CLI goes through the API with a token, and needs neither MongoDB nor Temporal', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-cli-'));
    // Nothing but the API is reachable: the database and Temporal addresses lead nowhere.
    const env = {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: home,
      MONGODB_URI: 'mongodb://127.0.0.1:9/unreachable',
      TEMPORAL_ADDRESS: '127.0.0.1:9',
    };
    const virtflow = (args: string[], input?: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [path.join(__dirname, '../../bin/virtflow.js'), ...args],
          { env },
          (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(input ?? '');
      });

    const login = await virtflow(['login', base, '--token-file', '-'], tokens['op-a']);
    expect(login.stdout).toMatch(/logged in to .* as token:op-a/);
    expect(fs.statSync(path.join(home, 'virtflow', 'credentials.json')).mode & 0o777).toBe(0o600);
    const created = await virtflow([
      'vm',
      'create',
      'cli-1',
      '--image',
      'sim-image',
      '--project',
      'team-a',
      '--json',
    ]);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(created.stdout)).toMatchObject({ vmId: 'cli-1', workflowId: 'vm/cli-1' });
    const listed = JSON.parse((await virtflow(['vm', 'list', '--json'])).stdout) as { vmId: string }[];
    expect(listed.map((v) => v.vmId)).toEqual(['a-one', 'a-two', 'cli-1']);
    const event = await stack.inventory.events.findOne({ workflowId: 'vm/cli-1', outcome: 'completed' });
    expect(event).toMatchObject({ actor: 'token:op-a' });
    // Refusals come back as in the direct mode: one line, the field or the reason named.
    const elsewhere = await virtflow(['vm', 'stop', 'b-one']);
    expect([elsewhere.code, elsewhere.stderr.trim()]).toEqual([
      1,
      'virtflow: error: vm "b-one" does not exist',
    ]);
    const bad = await virtflow(['vm', 'create', 'cli-2', '--image', 'sim-image', '--memory', '1']);
    expect(bad.stderr).toMatch(/^virtflow: error: memoryMiB: must be at least 96 MiB/);
    // Rollouts go through the API too, and the API's refusal comes back as one line.
    const steer = await virtflow(['rollout', 'pause', 'nope']);
    expect([steer.code, steer.stderr.trim()]).toEqual([
      1,
      'virtflow: error: token:op-a may not administer the fleet',
    ]);
    // So do images: the list, and an upload, which only a fleet admin may make.
    const images = JSON.parse((await virtflow(['image', 'list', '--json'])).stdout) as { name: string }[];
    expect(images.map((i) => i.name)).toContain('sim-image');
    const image = await virtflow(['image', 'show', 'sim-image']);
    expect(image.stdout).toMatch(/^project\s+fleet$/m);
    expect((await virtflow(['vm', 'show', 'a-one'])).stdout).toMatch(/^disks\s+vda 1 GiB$/m);
    fs.writeFileSync(path.join(home, 'x.raw'), Buffer.alloc(65536));
    const imported = await virtflow([
      'image',
      'import',
      path.join(home, 'x.raw'),
      '--name',
      'x',
      '--format',
      'raw',
    ]);
    expect([imported.code, imported.stderr.trim()]).toEqual([
      1,
      'virtflow: error: token:op-a may not administer the fleet',
    ]);
    const backups = await virtflow(['backup', 'list', '--json']);
    expect(backups).toMatchObject({ code: 0, stderr: '' });
    expect(Array.isArray(JSON.parse(backups.stdout))).toBe(true);
    // A console's log is read on its host by the controller; drift needs a fleet grant.
    expect(await virtflow(['vm', 'console', 'a-one', '--log'])).toMatchObject({ code: 0, stderr: '' });
    const drift = await virtflow(['audit', 'drift']);
    expect(drift.stderr.trim()).toBe("virtflow: error: token:op-a may not read the fleet's drift");
    // A live migration, and its controls, refused with the workflow's reason when none runs.
    const moved = await virtflow(['vm', 'migrate', 'a-one', '--json']);
    expect(moved).toMatchObject({ code: 0, stderr: '' });
    const migration = JSON.parse(moved.stdout);
    expect(migration).toMatchObject({ vmId: 'a-one', workflowId: 'vm/a-one' });
    expect(migration.target).not.toBe(migration.source);
    expect((await stack.inventory.vms.findOne({ _id: 'a-one' }))!.host).toBe(migration.target);
    const idle = await virtflow(['op', 'abort', 'a-one']);
    expect([idle.code, idle.stderr]).toEqual([1, expect.stringMatching(/^virtflow: error: /)]);
    // A project's quota and usage; only a fleet admin sets a quota.
    expect((await virtflow(['project', 'show', 'team-a'])).stdout).toMatch(/^vms\s+3 of no limit$/m);
    const quota = await virtflow(['project', 'quota', 'team-a', '--vms', '9']);
    expect(quota.stderr.trim()).toBe('virtflow: error: token:op-a may not administer the fleet');
    // Backup policies too: those of the token's projects.
    const policies = await virtflow(['backup', 'policy', 'list', '--json']);
    expect(policies).toMatchObject({ code: 0, stderr: '' });
    expect(Array.isArray(JSON.parse(policies.stdout))).toBe(true);
    // Hosts and networks: read with any grant, changed by a fleet admin.
    const hosts = JSON.parse((await virtflow(['host', 'list', '--json'])).stdout) as { hostId: string }[];
    expect(hosts.map((h) => h.hostId)).toEqual(['sim-0001', 'sim-0002']);
    expect((await virtflow(['host', 'status', 'sim-0001'])).stdout).toMatch(/^liveness\s+alive$/m);
    const evacuate = await virtflow(['host', 'evacuate', 'sim-0001']);
    expect(evacuate.stderr.trim()).toBe('virtflow: error: token:op-a may not administer the fleet');
    expect(await virtflow(['network', 'list', '--json'])).toMatchObject({ code: 0, stdout: '[]\n' });
    const net = await virtflow(['network', 'create', 'n-cli', '--cidr', '10.98.0.0/24']);
    expect(net.stderr.trim()).toBe('virtflow: error: token:op-a may not administer the fleet');
    // A VM's HA and backups; tokens and reconciliation passes are a fleet admin's.
    const ha = await virtflow(['vm', 'set-ha', 'a-two', '--priority', '3', '--json']);
    expect(ha).toMatchObject({ code: 0, stderr: '' });
    expect((await stack.inventory.vms.findOne({ _id: 'a-two' }))!.ha).toEqual({ enabled: true, priority: 3 });
    expect((await virtflow(['backup', 'verify', 'nope'])).stderr.trim()).toBe(
      'virtflow: error: backup "nope" does not exist',
    );
    for (const refused of [
      ['token', 'list'],
      ['audit', 'run'],
    ])
      expect((await virtflow(refused)).stderr.trim()).toBe(
        'virtflow: error: token:op-a may not administer the fleet',
      );
    // What the API does not serve is refused while logged in, not done behind its back.
    const direct = await virtflow(['sim', 'down']);
    expect(direct.stderr).toMatch(/not served by the API yet: run it with --direct/);
    expect((await virtflow(['vm', 'delete', 'cli-1', '--grace', '0'])).code).toBe(0);
    expect(await stack.inventory.vms.countDocuments({ _id: 'cli-1' })).toBe(0);
    expect((await virtflow(['logout'])).stdout.trim()).toBe('logged out');
  }, 120_000);

  test('the OpenAPI document describes the routes from the same schemas', async () => {
    const doc = (await call(undefined, 'GET', '/openapi.json')).body;
    expect(doc.openapi).toBe('3.1.0');
    const migrate = doc.paths['/v1/vms/{vmId}/migrate'].post;
    expect(migrate.parameters[0]).toMatchObject({ name: 'vmId', in: 'path' });
    const schema = migrate.requestBody.content['application/json'].schema;
    expect(Object.keys(schema.properties)).toEqual(['to', 'policy']);
    expect(schema.additionalProperties).toBe(false);
    expect(
      doc.paths['/v1/vms'].post.requestBody.content['application/json'].schema.properties.project,
    ).toBeDefined();
  });

  test('VMs come a page at a time, in id order, each page naming the next; a bad page is refused by field', async () => {
    const first = await call('op-a', 'GET', '/v1/vms?limit=1');
    expect(first.body.map((v: { vmId: string }) => v.vmId)).toEqual(['a-one']);
    expect(first.headers.get('link')).toBe('</v1/vms?after=a-one&limit=1>; rel="next"');
    const second = await call('op-a', 'GET', '/v1/vms?after=a-one&limit=1');
    expect(second.body.map((v: { vmId: string }) => v.vmId)).toEqual(['a-two']);
    const last = await call('op-a', 'GET', '/v1/vms?after=a-two&limit=1');
    expect(last.body).toEqual([]);
    expect(last.headers.get('link')).toBeNull();
    // A project's page holds only its VMs, so it is full while more of them follow.
    const b = await call('op-b', 'GET', '/v1/vms?limit=1');
    expect(b.body.map((v: { vmId: string }) => v.vmId)).toEqual(['b-one']);
    for (const bad of ['limit=0', 'limit=1001', 'after=Not_An_Id', 'sort=vmId']) {
      const res = await call('admin', 'GET', `/v1/vms?${bad}`);
      expect(res.status).toBe(400);
      expect(res.body.field).toMatch(/^query/);
    }
  });

  test('with a client CA, a verified client certificate stands for the token its CN names; no other does', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-mtls-'));
    const openssl = (...args: string[]) =>
      new Promise<void>((resolve, reject) =>
        execFile('openssl', args, { cwd: dir }, (err) => (err ? reject(err) : resolve())),
      );
    const selfSigned = (name: string, cn: string, ext: string[] = []) =>
      openssl(
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
        ...ext,
      );
    /** A certificate for `cn` signed by the CA `ca`. */
    const issued = async (name: string, cn: string, ca: string, ext: string[] = []) => {
      await openssl(
        'req',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      );
      await openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${ca}.crt`,
        '-CAkey',
        `${ca}.key`,
        '-CAcreateserial',
        '-days',
        '1',
        '-out',
        `${name}.crt`,
        ...ext,
      );
    };
    const idOf = (who: string) => /^vft_([0-9a-f]{16})_/.exec(tokens[who])![1];
    await selfSigned('ca', 'virtflow test CA');
    await selfSigned('rogue-ca', 'someone else');
    fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    await issued('server', '127.0.0.1', 'ca', ['-extfile', 'san.ext']);
    await issued('op-a', idOf('op-a'), 'ca');
    await issued('revoked', idOf('revoked'), 'ca');
    await issued('forged', idOf('admin'), 'rogue-ca');
    const read = (name: string) => fs.readFileSync(path.join(dir, name));

    const tlsApp = await buildApiServer(
      { inv: stack.inventory, client: stack.client, config: stack.config },
      { https: { cert: read('server.crt'), key: read('server.key'), ca: read('ca.crt') } },
    );
    const port = Number(new URL(await tlsApp.listen({ host: '127.0.0.1', port: 0 })).port);
    const whoami = (client?: string) =>
      new Promise<{ status: number; body: { actor?: string } }>((resolve, reject) => {
        const req = https.request(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/whoami',
            ca: read('ca.crt'),
            ...(client ? { cert: read(`${client}.crt`), key: read(`${client}.key`) } : {}),
          },
          (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
          },
        );
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await whoami('op-a')).toMatchObject({ status: 200, body: { actor: 'token:op-a' } });
      expect((await whoami()).status).toBe(401);
      // Signed by another CA: not verified, so not an identity, even naming the admin's token.
      expect((await whoami('forged')).status).toBe(401);
      // The token's revocation holds for its certificate too.
      expect((await whoami('revoked')).status).toBe(401);
    } finally {
      await tlsApp.close();
    }
  });
});
