import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runPatchStepLocked, StepBusyError, type StepRun } from '../../activities/host/patch-steps';

/** A step that counts its runs, takes `sec` seconds, and says so. */
function stepScript(dir: string, sec: number): string {
  const file = path.join(dir, `step-${sec}`);
  fs.writeFileSync(
    file,
    `#!/bin/bash\necho run >> "${dir}/runs"\nsleep ${sec}\necho "applied after ${sec} s"\n`,
    {
      mode: 0o755,
    },
  );
  return file;
}

describe('patch steps: one at a time per host, never twice for one activity', () => {
  let dir: string;
  let lockDir: string;
  const run = (owner: string, file: string, over: Partial<StepRun> = {}) =>
    runPatchStepLocked(lockDir, {
      owner,
      file,
      env: { PATH: process.env.PATH },
      timeoutMs: 10_000,
      signal: new AbortController().signal,
      onWait: () => undefined,
      ...over,
    });
  const runs = () => fs.readFileSync(path.join(dir, 'runs'), 'utf8').split('\n').filter(Boolean).length;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-steps-'));
    lockDir = path.join(dir, 'patch-steps');
  });

  test("a retried step adopts the first attempt's run, even once it has finished; another owner waits its turn", async () => {
    const step = stepScript(dir, 1);
    const first = run('rollout/r1/apply', step);
    while (!fs.existsSync(path.join(lockDir, 'current.json'))) await new Promise((r) => setTimeout(r, 20));
    // The retry, as the next agent gets it while the first run still applies the patch.
    const retry = run('rollout/r1/apply', step);
    await expect(run('rollout/r2/apply', step)).rejects.toThrow(StepBusyError);
    const expected = { exitCode: 0, timedOut: false, output: 'applied after 1 s' };
    expect(await first).toEqual(expected);
    expect(await retry).toEqual(expected);
    // A retry after the run ended (its agent died before reporting) reads the same result.
    expect(await run('rollout/r1/apply', step)).toEqual(expected);
    expect(runs()).toBe(1);
    // Another activity's step runs once the first has ended.
    expect(await run('rollout/r2/apply', step)).toEqual(expected);
    expect(runs()).toBe(2);
  });

  test('a step past its timeout is killed with its whole group', async () => {
    const step = stepScript(dir, 30);
    const r = await run('patch/r1/apply', step, { timeoutMs: 500 });
    expect(r).toMatchObject({ exitCode: null, timedOut: true });
    const lock = JSON.parse(fs.readFileSync(path.join(lockDir, 'current.json'), 'utf8')) as { pid: number };
    expect(() => process.kill(lock.pid, 0)).toThrow();
  });
});
