import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from '../../domain/config';
import { createApiToken } from '../../inventory/api-tokens';
import { buildApiServer } from '../../server/app';
import { vmOperations } from '../../client/vm-operations';
import { GUEST_IMAGE, hostsRunning, importGuestImage } from '../helpers/guests';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

/**
 * The web console in Debian's Chromium (playwright-core drives it; no browser is downloaded),
 * against the API, the controller and real QEMU hosts: an operator creates a VM, watches its
 * migration to the end and aborts another, reads its console and screen; a viewer is offered no
 * action; a fleet admin steers a rollout through a failing host. Each page's screenshot
 * is kept under .virtflow/test-artifacts/console/.
 */
describe('the web console in a real browser', () => {
  let stack: TestStack;
  let app: FastifyInstance;
  let browser: Browser;
  let base: string;
  const tokens: Record<string, string> = {};
  // Kept after the run (the run's own directory is removed): the test's artefacts.
  const shots = path.join(repoRoot, '.virtflow', 'test-artifacts', 'console');

  const shot = (page: Page, name: string) =>
    page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

  async function logIn(who: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1200, height: 800 } })).newPage();
    await page.goto(`${base}/console/#/login`);
    await page.fill('input[name=token]', tokens[who]);
    await page.click('button[type=submit]');
    await page.waitForSelector('h1:text("VMs")');
    return page;
  }

  /** Waits for the VM page's operation panel to show `type` ended, and returns its status. */
  async function endOf(page: Page, type: string, timeout = 240_000): Promise<string> {
    const panel = await page.waitForSelector(`#operation[data-type="${type}"]:not([data-status="RUNNING"])`, {
      timeout,
    });
    return (await panel.getAttribute('data-status'))!;
  }

  beforeAll(async () => {
    fs.mkdirSync(shots, { recursive: true });
    stack = await TestStack.create('console');
    await stack.startController(await bundleWorkflows());
    // Supervised: a patch restarts its host's agent, and the supervisor starts it again.
    for (const h of ['host-a', 'host-b'])
      await stack.startAgent(h, ['--memory', '2048'], {}, { supervised: true });
    await importGuestImage(stack.inventory, stack.config);
    for (const [name, project, role] of [
      ['lab-operator', 'lab', 'operator'],
      ['lab-viewer', 'lab', 'viewer'],
      ['fleet-admin', '*', 'admin'],
    ] as const)
      tokens[name] = (
        await createApiToken(stack.inventory, { name, grants: [{ project, role }] }, 'test')
      ).token;
    app = await buildApiServer({ inv: stack.inventory, client: stack.client, config: stack.config });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    // Root has no user namespaces for Chromium's sandbox here; the page is our own console.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await stack.stop();
  });

  test('an operator logs in and creates a VM; the page follows the create to the running guest', async () => {
    const page = await logIn('lab-operator');
    await shot(page, '1-vms-empty');
    await page.fill('#create-vm input[name=vmId]', 'web-1');
    await page.fill('#create-vm input[name=image]', GUEST_IMAGE);
    await page.selectOption('#create-vm select[name=project]', 'lab');
    await page.click('#create-vm button[type=submit]');
    expect(await endOf(page, 'createVm')).toBe('COMPLETED');
    await page.waitForSelector('#vm-state:text("running")');
    await shot(page, '2-vm-created');
    const host = (await page.textContent('#vm-host'))!;
    expect(hostsRunning(stack.config, 'web-1', ['host-a', 'host-b'])).toEqual([host]);
    await page.goto(`${base}/console/#/hosts`);
    await page.waitForSelector(`tr[data-host="${host}"]`);
    expect(await page.textContent(`tr[data-host="${host}"]`)).toMatch(/128 \/ 2048 MiB/);
    expect(await page.textContent(`tr[data-host="${host}"]`)).toMatch(/alive/);
    await shot(page, '3-hosts');
  }, 300_000);

  test("an operator watches a migration's progress to the end, then aborts another mid-transfer", async () => {
    const page = await logIn('lab-operator');
    await page.goto(`${base}/console/#/vms/web-1`);
    await page.waitForSelector('#migrate');
    const source = (await page.textContent('#vm-host'))!;
    const target = source === 'host-a' ? 'host-b' : 'host-a';

    // A migrated TCG guest sometimes stays silent on its target and is rolled back
    // (docs/decisions.md): the console must then show the failure and the VM still on its source.
    let status = '';
    for (let attempt = 1; attempt <= 3 && status !== 'COMPLETED'; attempt++) {
      await page.fill('#migrate input[name=to]', target);
      await page.fill('#migrate input[name=bandwidth]', '16');
      await page.click('#migrate button[type=submit]');
      await page.waitForSelector('#operation[data-type="liveMigration"] #transferred', { timeout: 120_000 });
      await shot(page, `4-migration-progress-${attempt}`);
      status = await endOf(page, 'liveMigration');
      if (status !== 'COMPLETED') {
        expect(hostsRunning(stack.config, 'web-1', ['host-a', 'host-b'])).toEqual([source]);
        await page.reload();
        await page.waitForSelector('#migrate');
      }
    }
    expect(status).toBe('COMPLETED');
    await page.waitForSelector(`#vm-host:text("${target}")`);
    await shot(page, '5-migration-done');
    expect(hostsRunning(stack.config, 'web-1', ['host-a', 'host-b'])).toEqual([target]);

    // What the guest shows, read on its new host: its console's heartbeats and its screen.
    await page.reload();
    await page.click('#read-console');
    await page.waitForSelector('#console-log:has-text("virtflow-heartbeat vm=web-1")');
    await page.click('#take-screenshot');
    // Shown once the PNG has loaded: an image that failed to load has no width.
    const image = await page.waitForSelector('#screen img');
    const width = () => image.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth);
    expect(await until('the screenshot to load', async () => (await width()) > 0, 30_000)).toBe(true);
    await shot(page, '5b-console-and-screen');

    // The second one, slow enough to abort while it copies memory.
    await page.waitForSelector('#migrate');
    await page.fill('#migrate input[name=to]', source);
    await page.fill('#migrate input[name=bandwidth]', '1');
    await page.click('#migrate button[type=submit]');
    await page.waitForSelector('#phase:text("transferring")', { timeout: 120_000 });
    // While the migration holds the VM, the page offers nothing else: only its abort.
    expect(await page.$$('#controls button, #controls form')).toHaveLength(0);
    await shot(page, '6-before-abort');
    await page.click('#abort');
    expect(await endOf(page, 'liveMigration')).not.toBe('RUNNING');
    await shot(page, '7-aborted');
    const vm = await stack.inventory.vms.findOne({ _id: 'web-1' });
    expect(vm).toMatchObject({ host: target, state: 'running', migration: null });
    expect(hostsRunning(stack.config, 'web-1', ['host-a', 'host-b'])).toEqual([target]);
    const events = await stack.inventory.events
      .find({ subject: 'vm/web-1', operation: 'live-migration' })
      .sort({ at: 1 })
      .toArray();
    expect(events.at(-1)).toMatchObject({ outcome: 'rolled-back', actor: 'token:lab-operator' });
  }, 900_000);

  test('a viewer sees the VMs and their operations, and is offered no action', async () => {
    const page = await logIn('lab-viewer');
    await page.waitForSelector('tr[data-vm="web-1"]');
    expect(await page.$('#create-vm')).toBeNull();
    await shot(page, '8-viewer-vms');
    await page.click('tr[data-vm="web-1"] a');
    await page.waitForSelector('#operation');
    expect(await page.$$('#controls button, #controls form, #abort, #guest')).toHaveLength(0);
    await shot(page, '9-viewer-vm');
    await page.goto(`${base}/console/#/drift`);
    await page.waitForSelector('text=Drift is read with a fleet grant.');
  }, 120_000);

  test("an operator pauses, resumes and runs its project's backup policy from the backups page; a viewer gets no control", async () => {
    const made = await fetch(`${base}/v1/backup-policies`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens['fleet-admin']}`, 'content-type': 'application/json' },
      // A label no VM carries: its run on demand backs nothing up, so no operation holds web-1.
      body: JSON.stringify({
        name: 'lab-nightly',
        project: 'lab',
        vmLabels: { tier: 'none-here' },
        schedule: { cron: '0 3 * * *' },
      }),
    });
    expect(made.status).toBe(201);
    const viewer = await logIn('lab-viewer');
    await viewer.goto(`${base}/console/#/backups`);
    await viewer.waitForSelector('tr[data-policy="lab-nightly"]');
    expect(await viewer.$$('tr[data-policy="lab-nightly"] button')).toHaveLength(0);

    const page = await logIn('lab-operator');
    await page.goto(`${base}/console/#/backups`);
    await page.click('tr[data-policy="lab-nightly"] button[data-policy-control="pause"]');
    await page.waitForSelector('tr[data-policy="lab-nightly"][data-paused="yes"]');
    const schedule = stack.client.schedule.getHandle('backup-policy/lab-nightly');
    expect((await schedule.describe()).state.paused).toBe(true);
    await shot(page, '9b-policy-paused');
    await page.click('tr[data-policy="lab-nightly"] button[data-policy-control="resume"]');
    await page.waitForSelector('tr[data-policy="lab-nightly"][data-paused="no"]');
    expect((await schedule.describe()).state.paused).toBe(false);
    await page.click('tr[data-policy="lab-nightly"] button[data-policy-control="trigger"]');
    // Run now starts the policy's run at once (its scheduled time is hours away), and it ends.
    const run = await until(
      'the policy to run once',
      async () => (await schedule.describe()).info.recentActions[0]?.action.workflow,
    );
    await stack.client.workflow.getHandle(run.workflowId, run.firstExecutionRunId).result();
    await schedule.delete();
    await stack.inventory.backupPolicies.deleteOne({ _id: 'lab-nightly' });
  }, 120_000);

  test('a fleet admin starts a rollout, sees it halt on a failing host, skips the host and resumes it to the end', async () => {
    // No VM to move: the rollout is about the hosts.
    const vm = await stack.inventory.vms.findOne({ _id: 'web-1' });
    if (vm)
      await (
        await vmOperations(stack.client, stack.config).delete({ vmId: 'web-1', gracefulTimeoutSec: 0 })
      ).result();
    const page = await logIn('fleet-admin');
    await page.goto(`${base}/console/#/rollouts`);
    await page.fill('#start-rollout input[name=name]', 'web-roll');
    await page.fill('#start-rollout input[name=patch]', 'flaky-on-host-b');
    await page.fill('#start-rollout input[name=hosts]', 'host-a, host-b');
    await page.fill('#start-rollout input[name=canaryHosts]', '0');
    await page.click('#start-rollout button[type=submit]');
    await page.waitForSelector('#rollout-phase:text("halted")', { timeout: 240_000 });
    await page.waitForSelector('tr[data-host="host-b"][data-state="failed"]');
    expect(await page.textContent('#waiting-for')).toMatch(/skip or retry/);
    await shot(page, '10-rollout-halted');
    await page.click('tr[data-host="host-b"] button[data-control="skip"]');
    await page.waitForSelector('tr[data-host="host-b"][data-state="skipped"]');
    await page.click('#rollout-controls button[data-control="resume"]');
    await page.waitForSelector('#rollout-status:text("COMPLETED")', { timeout: 240_000 });
    await shot(page, '11-rollout-done');
    expect(await page.getAttribute('tr[data-host="host-a"]', 'data-state')).toBe('patched');
    const result = await stack.client.workflow.getHandle('rollout/web-roll').result();
    expect(result.hosts.map((h: { hostId: string; state: string }) => [h.hostId, h.state]).sort()).toEqual([
      ['host-a', 'patched'],
      ['host-b', 'skipped'],
    ]);
    const events = await stack.inventory.events.find({ subject: 'host/host-a' }).toArray();
    expect(events.some((e) => e.actor === 'token:fleet-admin')).toBe(true);

    // The fleet's other pages, as the admin sees them.
    for (const [hash, heading, name] of [
      ['#/backups', 'Backups', '12-backups'],
      ['#/drift', 'Drift', '13-drift'],
      ['#/rollouts', 'Rollouts', '14-rollouts'],
    ]) {
      await page.goto(`${base}/console/${hash}`);
      await page.waitForSelector(`h1:text("${heading}")`);
      await shot(page, name);
    }
    await page.waitForSelector('tr[data-rollout="web-roll"]');
  }, 600_000);

  test('a fleet admin takes a host out of service and back from the hosts page; an operator is offered neither', async () => {
    const operator = await logIn('lab-operator');
    await operator.goto(`${base}/console/#/hosts`);
    await operator.waitForSelector('tr[data-host="host-a"]');
    expect(await operator.$$('button[data-maintenance]')).toHaveLength(0);

    // host-a: the rollout above patched it and returned it to service (it left host-b to an operator).
    const page = await logIn('fleet-admin');
    await page.goto(`${base}/console/#/hosts`);
    await page.click('tr[data-host="host-a"] button[data-maintenance="enter"]');
    await page.waitForSelector('tr[data-host="host-a"][data-maintenance="in-maintenance"]', {
      timeout: 60_000,
    });
    expect((await stack.inventory.hosts.findOne({ _id: 'host-a' }))!.maintenance).toBe(true);
    await page.waitForSelector('tr[data-host="host-a"] a:text("enterMaintenance completed")');
    await shot(page, '15-host-in-maintenance');
    await page.click('tr[data-host="host-a"] button[data-maintenance="exit"]');
    await page.waitForSelector('tr[data-host="host-a"][data-maintenance="no"]', { timeout: 60_000 });
    expect((await stack.inventory.hosts.findOne({ _id: 'host-a' }))!.maintenance).toBe(false);
    const events = await stack.inventory.events.find({ subject: 'host/host-a' }).toArray();
    expect(events.filter((e) => e.actor === 'token:fleet-admin').length).toBeGreaterThan(0);
  }, 120_000);
});
