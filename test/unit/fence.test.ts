import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FenceFailedError, runFence } from '../../activities/controller/fence-drivers';
import { describeFence, fenceFor, loadFenceConfig, type FenceDriver } from '../../domain/fence';

const target = { hostId: 'hv-01', hostDir: '/nonexistent', agentPid: 1 };

function configFile(content: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-fence-'));
  const file = path.join(dir, 'fence.json');
  fs.writeFileSync(file, JSON.stringify(content));
  return file;
}

describe('fence configuration (the controller side only)', () => {
  test('a host gets its own fence, or the default; none configured means none', () => {
    const config = loadFenceConfig(
      configFile({
        default: { driver: 'local-stack' },
        hosts: { 'hv-01': { driver: 'command', argv: ['ipmitool', 'chassis', 'power', 'off'] } },
      }),
    );
    expect(fenceFor(config, 'hv-01')).toEqual({
      driver: 'command',
      argv: ['ipmitool', 'chassis', 'power', 'off'],
      env: {},
      timeoutSec: 60,
    });
    expect(fenceFor(config, 'hv-02')).toEqual({ driver: 'local-stack', timeoutSec: 30 });
    expect(fenceFor(loadFenceConfig(undefined), 'hv-01')).toBeUndefined();
  });

  test('a bad configuration is refused naming the field and the reason', () => {
    const bad = (content: unknown) => () => loadFenceConfig(configFile(content));
    expect(bad({ hosts: { 'hv-01': { driver: 'command', argv: [] } } })).toThrow(
      /hosts\.hv-01\.argv: must name the program to run/,
    );
    expect(bad({ hosts: { 'hv-01': { driver: 'command', argv: ['x'], command: 'sh -c x' } } })).toThrow(
      /hosts\.hv-01: Unrecognized key: "command"/,
    );
    expect(
      bad({ hosts: { 'hv-01': { driver: 'command', argv: ['x'], env: { pw: { fromEnv: 'P' } } } } }),
    ).toThrow(/hosts\.hv-01\.env\.pw: must be an environment variable name/);
    expect(bad({ default: { driver: 'command', argv: ['x'], env: { PW: { fromFile: 'pw.txt' } } } })).toThrow(
      /default\.env\.PW\.fromFile: must be an absolute path/,
    );
    expect(bad({ default: { driver: 'local-stack', timeoutSec: 0 } })).toThrow(
      /default\.timeoutSec: must be at least 1 s/,
    );
  });

  test('describing a fence never shows a secret, only where it comes from', () => {
    const f: FenceDriver = {
      driver: 'command',
      argv: ['ipmitool', '-E', 'chassis', 'power', 'off'],
      env: { IPMI_PASSWORD: { fromEnv: 'BMC_PW' }, BMC: 'bmc-01' },
      timeoutSec: 20,
    };
    expect(describeFence(f)).toBe(
      'command ipmitool -E chassis power off [env IPMI_PASSWORD←$BMC_PW, BMC] (timeout 20 s)',
    );
  });
});

describe('running a fence', () => {
  const command = (argv: string[], over: Partial<Extract<FenceDriver, { driver: 'command' }>> = {}) =>
    ({ driver: 'command', argv, env: {}, timeoutSec: 5, ...over }) as FenceDriver;

  test('runs without a shell, with only PATH, the host and its own variables', async () => {
    process.env.VF_FENCE_TEST_SECRET = 'hunter2-xyz';
    const out = await runFence(
      command(['env'], { env: { PW: { fromEnv: 'VF_FENCE_TEST_SECRET' }, BMC: 'bmc-01' } }),
      target,
    );
    const vars = out
      .split('\n')
      .map((l) => l.split('=')[0])
      .sort();
    expect(vars).toEqual(['BMC', 'PATH', 'PW', 'VIRTFLOW_FENCE_HOST']);
    expect(out).toContain('VIRTFLOW_FENCE_HOST=hv-01');
    // The secret reached the program, and was blanked out of what it printed.
    expect(out).toContain('PW=***');
    expect(out).not.toContain('hunter2-xyz');
    // Shell syntax is an argument like any other: nothing interprets it.
    expect(await runFence(command(['echo', '$(id); exit 3']), target)).toBe('$(id); exit 3');
  });

  test('a non-zero exit, a timeout or a missing secret is a failed fence', async () => {
    await expect(runFence(command(['false']), target)).rejects.toThrow(
      new FenceFailedError('fence of hv-01 exited 1: no output'),
    );
    await expect(runFence(command(['sleep', '5'], { timeoutSec: 1 }), target)).rejects.toThrow(
      /did not finish within 1 s/,
    );
    await expect(
      runFence(command(['true'], { env: { PW: { fromEnv: 'VF_FENCE_TEST_UNSET' } } }), target),
    ).rejects.toThrow(/fence variable PW: the controller has no VF_FENCE_TEST_UNSET in its environment/);
    await expect(runFence(command(['/no/such/program']), target)).rejects.toThrow(
      /could not run \/no\/such\/program/,
    );
  });
});
