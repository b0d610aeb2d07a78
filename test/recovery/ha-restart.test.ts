import type { HaRestartResult } from '../../workflows/ha-restart';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { FAST_FACTS, haSteps } from '../helpers/ha';
import { cli, freshHeartbeat, hostsRunning, importGuestImage } from '../helpers/guests';

const HOSTS = ['host-a', 'host-b', 'host-c'];

describe('HA: a lost host brings its HA VMs back elsewhere, never twice', () => {
  let stack: TestStack;
  let ha: ReturnType<typeof haSteps>;
  let vms: ReturnType<typeof haSteps>['vms'];

  beforeAll(async () => {
    stack = await TestStack.create('ha-restart');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(HOSTS, FAST_FACTS);
    await importGuestImage(stack.inventory, stack.config);
    ha = haSteps(stack);
    vms = ha.vms;
  });
  afterAll(() => stack.stop());

  test('a lost host is fenced, then its HA VMs boot on other hosts by priority; no VM ever runs twice', async () => {
    await Promise.all([
      ha.createOn('db', 'host-c', 10),
      ha.createOn('app', 'host-c', 5),
      ha.createOn('scratch', 'host-c'),
    ]);
    const agentPid = stack.agents.get('host-c')!.process.child.pid!;

    // Every 50 ms, every host's QEMU processes: each VM may show up on one host at most.
    let maxCopies = 0;
    const sampler = setInterval(() => {
      for (const vmId of ['db', 'app', 'scratch'])
        maxCopies = Math.max(maxCopies, hostsRunning(stack.config, vmId).length);
    }, 50);
    try {
      ha.freeze(stack.agents.get('host-c')!);
      const handle = await ha.passUntilLost('host-c');
      const r: HaRestartResult = await handle.result();

      expect(r.outcome).toBe('restarted');
      expect(r.fence).toMatch(/fenced host-c: killed 4 process\(es\)/);
      // Waves by priority: db (10) restarted before app (5); the non-HA VM stays down.
      expect(r.restarted.map((x) => x.vmId)).toEqual(['db', 'app']);
      expect(r.failed).toEqual([]);
      for (const { vmId, to } of r.restarted) {
        expect(to).not.toBe('host-c');
        expect(hostsRunning(stack.config, vmId)).toEqual([to]);
        expect(await stack.inventory.vms.findOne({ _id: vmId })).toMatchObject({
          state: 'running',
          host: to,
        });
        await freshHeartbeat(stack.config, to, vmId);
      }
      expect(hostsRunning(stack.config, 'scratch')).toEqual([]);
      expect(await stack.inventory.vms.findOne({ _id: 'scratch' })).toMatchObject({
        state: 'crashed',
        stateReason: 'host host-c was fenced',
      });
      // The fence really killed the frozen agent too.
      expect(() => process.kill(agentPid, 0)).toThrow();
    } finally {
      clearInterval(sampler);
    }
    expect(maxCopies).toBe(1);

    const list = await cli(stack.env, ['host', 'list']);
    expect(list.stdout).toMatch(/host-c\s+unreachable\s+fenced/);
    const restarts = await stack.inventory.events
      .find({ operation: 'ha-restart', outcome: 'completed' })
      .toArray();
    expect(restarts.map((e) => e.subject).sort()).toEqual(['vm/app', 'vm/db']);
  });

  test('bad HA settings are refused before anything changes', async () => {
    await expect(vms.setHa({ vmId: 'db', priority: -1 })).rejects.toThrow(/priority: must be 0 or more/);
    await expect(vms.setHa({ vmId: 'db', priority: 1.5 })).rejects.toThrow(
      /priority: must be a whole number/,
    );
    const out = await cli(stack.env, ['vm', 'set-ha', 'nope', '--priority', '3']);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/vm "nope" does not exist/);
    expect(await stack.inventory.vms.findOne({ _id: 'db' })).toMatchObject({
      ha: { enabled: true, priority: 10 },
    });
  });
});
