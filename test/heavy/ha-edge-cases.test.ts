import fs from 'node:fs';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { cli, freshHeartbeat, hostsRunning, importGuestImage, qemuOn } from '../helpers/guests';
import { FAST_FACTS, haSteps } from '../helpers/ha';

/**
 * HA beyond the lost-host case `npm test` covers (test/recovery/ha-restart.test.ts): a guest that
 * dies on a healthy host, and a fence that fails. The workflow's branches for both also run
 * against mocked activities in test/workflows/ha-restart.test.ts.
 */
describe('HA: a dead guest restarts in place; a failed fence restarts nothing', () => {
  let stack: TestStack;
  let ha: ReturnType<typeof haSteps>;

  beforeAll(async () => {
    stack = await TestStack.create('ha-edge-cases');
    await stack.startController(await bundleWorkflows());
    // host-c's agent is started by the fence test itself, with a fence that fails.
    await stack.startAgents(['host-a', 'host-b'], FAST_FACTS);
    await importGuestImage(stack.inventory, stack.config);
    ha = haSteps(stack);
  });
  afterAll(() => stack.stop());

  test('a dead HA guest on a healthy host is marked crashed and restarted there', async () => {
    await ha.createOn('web', 'host-a', 1);
    process.kill(qemuOn(stack.config, 'host-a').find('web')!.pid, 'SIGKILL');
    while (qemuOn(stack.config, 'host-a').find('web')) await new Promise((r) => setTimeout(r, 100));

    const r = await ha.pass();
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

  test('a lost host whose fence fails: nothing restarts and the host needs an operator', async () => {
    // host-c's fence, configured on the controller: its BMC password is a reference to the
    // controller's environment, resolved only when the fence runs, and never shown.
    process.env.VF_TEST_BMC_PASSWORD = 's3cret-pw';
    fs.writeFileSync(
      stack.config.fenceConfigPath!,
      JSON.stringify({
        default: { driver: 'local-stack' },
        hosts: {
          'host-c': {
            driver: 'command',
            argv: [
              'bash',
              '-c',
              'echo "power controller $BMC did not answer to password $IPMI_PASSWORD (db: ${MONGODB_URI:-unset})" >&2; exit 1',
            ],
            env: { BMC: 'bmc-c', IPMI_PASSWORD: { fromEnv: 'VF_TEST_BMC_PASSWORD' } },
          },
        },
      }),
    );
    const agent = await stack.startAgent('host-c', FAST_FACTS);
    expect(await stack.inventory.hosts.findOne({ _id: 'host-c' })).toMatchObject({
      needsOperator: '',
      fencedAt: null,
    });
    await ha.createOn('keep', 'host-c', 7);
    const guestPid = qemuOn(stack.config, 'host-c').find('keep')!.pid;

    ha.freeze(agent);
    try {
      const handle = await ha.passUntilLost('host-c');
      await expect(handle.result()).rejects.toThrow();
      const described = await handle.describe();
      expect(described.status.name).toBe('FAILED');

      const host = await stack.inventory.hosts.findOne({ _id: 'host-c' });
      // The fence ran without the controller's environment, and its secret stayed hidden.
      expect(host?.needsOperator).toMatch(
        /fence failed: .*power controller bmc-c did not answer to password \*\*\* \(db: unset\)/,
      );
      expect(JSON.stringify(await handle.fetchHistory())).not.toContain('s3cret-pw');
      // The guest was left alone: still the same process, still recorded where it runs.
      expect(qemuOn(stack.config, 'host-c').find('keep')?.pid).toBe(guestPid);
      expect(hostsRunning(stack.config, 'keep')).toEqual(['host-c']);
      expect(await stack.inventory.vms.findOne({ _id: 'keep' })).toMatchObject({
        state: 'running',
        host: 'host-c',
      });
      // A host waiting for its operator is not handed to HA again by the next pass.
      expect((await ha.pass()).lostHosts).toEqual([]);

      const status = await cli(stack.env, ['host', 'status', 'host-c']);
      expect(status.stdout).toMatch(/needs-operator\s+fence failed/);
      const list = await cli(stack.env, ['host', 'list']);
      expect(list.stdout).toMatch(/host-c\s+unreachable\s+needs-operator/);
    } finally {
      agent.process.child.kill('SIGCONT');
    }
  });
});
