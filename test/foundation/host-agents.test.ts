import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';
import { installed } from '../../domain/config';
import { CONTROLLER_TASK_QUEUE } from '../../domain/names';
import { qemuVersion } from '../../hypervisor/host-facts';
import { localQemuHost } from '../../hypervisor/local-qemu-host';
import { isProcessRunning } from '../../hypervisor/qemu-host';
import { consoleTail } from '../../hypervisor/console-log';
import { withGuestAgent } from '../../hypervisor/guest-agent';
import { floodConsole } from '../../scripts/guest/workloads';
import { startBareGuest } from '../helpers/guests';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';

const run = promisify(execFile);

describe('the local stack: three host agents and the controller on the real dev server', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('host-agents');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents();
  });
  afterAll(() => stack.stop());

  test('each agent registers its host with the facts of the real machine', async () => {
    const hosts = await stack.inventory.hosts.find({}).sort({ _id: 1 }).toArray();
    expect(hosts.map((h) => h._id)).toEqual(['host-a', 'host-b', 'host-c']);
    const version = await qemuVersion();
    for (const host of hosts) {
      expect(host.state).toBe('up');
      expect(host.facts.qemuVersion).toBe(version);
      expect(host.facts.vcpus).toBe(os.cpus().length);
      expect(host.facts.memoryMiB).toBe(Math.floor(os.totalmem() / 1024 / 1024));
      expect(host.agent.taskQueue).toBe(`host/${host._id}`);
      // KVM does not boot a guest on these machines (/dev/kvm faults in the firmware): the probe
      // booted one under a deadline and says why it chose TCG.
      expect(host.facts).toMatchObject({ accel: 'tcg', accelReason: expect.stringMatching(/KVM|kvm/) });
      expect(host.facts.cpuModels).toEqual(expect.arrayContaining(['qemu64', 'Nehalem']));
      expect(host.facts.cpuModels).not.toContain('SandyBridge');
      expect(host.revision).toBeGreaterThanOrEqual(1);
    }
    expect(new Set(hosts.map((h) => h.migrationPorts.first)).size).toBe(3);
  });

  test('a checkHost workflow runs on the dev server and is found by a search-attribute query', async () => {
    const handle = await stack.client.workflow.start('checkHost', {
      taskQueue: CONTROLLER_TASK_QUEUE,
      workflowId: 'host/host-b/check-smoke',
      args: [{ hostId: 'host-b' }],
      staticSummary: 'Check host host-b',
    });
    const result = await handle.result();
    expect(result).toMatchObject({ hostId: 'host-b', qemuVersion: await qemuVersion(), guests: [] });

    // The query also names this run's id; it still finds nothing unless the custom attributes were set.
    const query = `VfOperation = "check-host" AND VfHosts = "host-b" AND VfPhase = "done" AND WorkflowId = "host/host-b/check-smoke"`;
    let listed: { execution: { workflowId: string; runId: string } }[] = [];
    for (let i = 0; i < 50 && listed.length === 0; i++) {
      const { stdout } = await run(installed.temporal, [
        'workflow',
        'list',
        '--address',
        stack.config.temporal.address,
        '--namespace',
        stack.config.temporal.namespace,
        '--query',
        query,
        '--output',
        'json',
      ]);
      listed = stdout.trim() ? JSON.parse(stdout) : [];
      if (listed.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(listed.map((w) => w.execution.workflowId)).toEqual(['host/host-b/check-smoke']);
    expect(listed[0].execution.runId).toBe(handle.firstExecutionRunId);

    const event = await stack.inventory.events.findOne({ workflowId: 'host/host-b/check-smoke' });
    expect(event).toMatchObject({ operation: 'check-host', subject: 'host/host-b', outcome: 'completed' });
  });

  test('an agent that starts discards the canary guests a killed agent left, and keeps every other guest', async () => {
    await stack.agents.get('host-b')!.process.stop();
    // What an agent killed during a patch's health check leaves: its canary runs on, and a guest.
    const qemu = localQemuHost(stack.config.dataDir, 'host-b');
    const guests = [];
    for (const vmId of ['canary-left', 'vm-kept']) guests.push(await startBareGuest(qemu, vmId));
    await stack.startAgent('host-b');
    expect(qemu.find('canary-left')).toBeUndefined();
    expect(isProcessRunning(guests[0].pid)).toBe(false);
    expect(fs.readdirSync(qemu.runDir).filter((f) => f.startsWith('canary-left'))).toEqual([]);
    expect(qemu.find('vm-kept')?.pid).toBe(guests[1].pid);
    qemu.kill('vm-kept');
  });

  test('a guest flooding its console costs a bounded log, and its host agent keeps its heartbeat', async () => {
    await stack.agents.get('host-a')!.process.stop();
    await stack.startAgent('host-a', ['--facts-interval', '2'], { VIRTFLOW_CONSOLE_LOG_MAX_KIB: '64' });
    const qemu = localQemuHost(stack.config.dataDir, 'host-a');
    // About 350 KB/s on these machines: 15 s of it unrotated would be over 5 MB.
    await startBareGuest(qemu, 'flood', {}, floodConsole);
    const log = qemu.files('flood').serialLog;
    const sizeOf = (f: string) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
    // Measure from the moment it floods (its boot and the agent's own start are not the question).
    for (let i = 0; i < 240 && !consoleTail(log, 4096).includes('flood flood'); i++)
      await new Promise((r) => setTimeout(r, 250));
    let largest = 0;
    let oldestHeartbeatMs = 0;
    const until = Date.now() + 15_000;
    while (Date.now() < until) {
      largest = Math.max(largest, sizeOf(log) + sizeOf(`${log}.1`));
      const host = await stack.inventory.hosts.findOne({ _id: 'host-a' });
      oldestHeartbeatMs = Math.max(oldestHeartbeatMs, Date.now() - host!.agent.heartbeatAt.getTime());
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(consoleTail(log, 4096)).toContain('flood flood');
    expect(fs.existsSync(`${log}.1`)).toBe(true); // it was rotated
    // The log and its rotated end stay under twice the cap plus what the guest prints between two
    // rotations (hypervisor/console-log.ts). Rotations are a second apart, later when the agent's
    // loop is held up on a loaded machine: 2 MiB allows about 5 s of flood between them, the most
    // the heartbeat check below tolerates; 15 s unrotated would be over 5 MB.
    expect(largest).toBeLessThan(2 * 64 * 1024 + 2 * 1024 * 1024);
    // Three missed fact intervals would count the host as lost.
    expect(oldestHeartbeatMs).toBeLessThan(3 * 2000);
    await withGuestAgent(qemu.files('flood').agentSocket, 5000, (a) => a.execute('guest-ping'));
    qemu.kill('flood');
  });

  test('a host whose agent is gone is reported unreachable, not waited on forever', async () => {
    await stack.agents.get('host-c')!.process.stop();
    const err = await stack.client.workflow
      .execute('checkHost', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId: 'host/host-c/check-down',
        args: [{ hostId: 'host-c' }],
      })
      .catch((e: unknown) => e as Error);
    expect(String((err as Error).cause)).toMatch(/host host-c did not answer/);
    expect((await stack.inventory.hosts.findOne({ _id: 'host-c' }))?.state).toBe('unreachable');
  });
});
