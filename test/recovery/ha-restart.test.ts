import { auditOperations } from '../../client/audit-operations';
import { vmOperations } from '../../client/vm-operations';
import type { HaRestartResult } from '../../workflows/ha-restart';
import { bundleWorkflows, TestStack, type HostAgentHandle } from '../helpers/test-stack';
import { cli, freshHeartbeat, GUEST_IMAGE, hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';

/** Agents heartbeat every second here, so a host is lost 3 s after its agent stops answering. */
const FAST_FACTS = ['--facts-interval', '1'];
const HOSTS = ['host-a', 'host-b', 'host-c'];

describe('HA: a dead guest or a lost host brings HA VMs back, never twice', () => {
  let stack: TestStack;
  let audit: ReturnType<typeof auditOperations>;
  let vms: ReturnType<typeof vmOperations>;
  const pass = async () => (await audit.run()).result();

  /** Reconciles until a pass hands `hostId` to HA, as the schedule would every interval. */
  async function passUntilLost(hostId: string) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await pass();
      if (r.lostHosts.includes(hostId)) return stack.client.workflow.getHandle(`host/${hostId}`);
      if (Date.now() > deadline) throw new Error(`${hostId} was not found lost within 30 s`);
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  async function createOn(vmId: string, host: string, priority?: number) {
    await (await vms.create({ vmId, image: GUEST_IMAGE, host })).result();
    if (priority !== undefined) await (await vms.setHa({ vmId, priority })).result();
  }

  /** An agent frozen with SIGSTOP: it no longer answers, but its process (and guests) still run. */
  function freeze(agent: HostAgentHandle) {
    agent.process.child.kill('SIGSTOP');
  }

  beforeAll(async () => {
    stack = await TestStack.create('ha-restart');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(HOSTS, FAST_FACTS);
    await importGuestImage(stack.inventory, stack.config);
    audit = auditOperations(stack.client, stack.config);
    vms = vmOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  test('a dead HA guest on a healthy host is marked crashed and restarted there', async () => {
    await createOn('web', 'host-a', 1);
    process.kill(qemuOn(stack.config, 'host-a').find('web')!.pid, 'SIGKILL');
    while (qemuOn(stack.config, 'host-a').find('web')) await new Promise((r) => setTimeout(r, 100));

    const r = await pass();
    expect(r.hosts['host-a']).toMatchObject({
      found: [{ kind: 'vm-not-running', subject: 'vm/web', state: 'fixed' }],
      haRestart: ['web'],
    });
    expect(await stack.inventory.vms.findOne({ _id: 'web' })).toMatchObject({
      state: 'running',
      host: 'host-a',
    });
    expect(hostsRunning(stack.config, 'web')).toEqual(['host-a']);
    await freshHeartbeat(stack.config, 'host-a', 'web');
  });

  test('bad HA settings are refused before anything changes', async () => {
    await expect(vms.setHa({ vmId: 'web', priority: -1 })).rejects.toThrow(/priority: must be 0 or more/);
    await expect(vms.setHa({ vmId: 'web', priority: 1.5 })).rejects.toThrow(
      /priority: must be a whole number/,
    );
    const out = await cli(stack.env, ['vm', 'set-ha', 'nope', '--priority', '3']);
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/vm "nope" does not exist/);
    expect(await stack.inventory.vms.findOne({ _id: 'web' })).toMatchObject({
      ha: { enabled: true, priority: 1 },
    });
  });

  test('a lost host is fenced, then its HA VMs boot on other hosts by priority; no VM ever runs twice', async () => {
    await createOn('db', 'host-c', 10);
    await createOn('app', 'host-c', 5);
    await createOn('scratch', 'host-c');
    const agentPid = stack.agents.get('host-c')!.process.child.pid!;

    // Every 50 ms, every host's QEMU processes: each VM may show up on one host at most.
    let maxCopies = 0;
    const sampler = setInterval(() => {
      for (const vmId of ['db', 'app', 'scratch'])
        maxCopies = Math.max(maxCopies, hostsRunning(stack.config, vmId).length);
    }, 50);
    try {
      freeze(stack.agents.get('host-c')!);
      const handle = await passUntilLost('host-c');
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

  test('a lost host whose fence fails: nothing restarts and the host needs an operator', async () => {
    const agent = await stack.startAgent('host-c', [
      ...FAST_FACTS,
      '--fence',
      'echo "power controller did not answer" >&2; exit 1',
    ]);
    expect(await stack.inventory.hosts.findOne({ _id: 'host-c' })).toMatchObject({
      needsOperator: '',
      fencedAt: null,
    });
    await createOn('keep', 'host-c', 7);
    const guestPid = qemuOn(stack.config, 'host-c').find('keep')!.pid;

    freeze(agent);
    try {
      const handle = await passUntilLost('host-c');
      await expect(handle.result()).rejects.toThrow();
      const described = await handle.describe();
      expect(described.status.name).toBe('FAILED');

      const host = await stack.inventory.hosts.findOne({ _id: 'host-c' });
      expect(host?.needsOperator).toMatch(/fence failed: .*power controller did not answer/);
      // The guest was left alone: still the same process, still recorded where it runs.
      expect(qemuOn(stack.config, 'host-c').find('keep')?.pid).toBe(guestPid);
      expect(hostsRunning(stack.config, 'keep')).toEqual(['host-c']);
      expect(await stack.inventory.vms.findOne({ _id: 'keep' })).toMatchObject({
        state: 'running',
        host: 'host-c',
      });
      // A host waiting for its operator is not handed to HA again by the next pass.
      expect((await pass()).lostHosts).toEqual([]);

      const status = await cli(stack.env, ['host', 'status', 'host-c']);
      expect(status.stdout).toMatch(/needs-operator\s+fence failed/);
      const list = await cli(stack.env, ['host', 'list']);
      expect(list.stdout).toMatch(/host-c\s+unreachable\s+needs-operator/);
    } finally {
      agent.process.child.kill('SIGCONT');
    }
  });
});
