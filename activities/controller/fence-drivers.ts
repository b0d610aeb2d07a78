import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { FenceDriver, FenceEnvValue } from '../../domain/fence';
import { repoRoot } from '../../domain/config';
import { VirtflowError } from '../../domain/errors';

/** The fence action failed or could not confirm the host runs nothing: nothing may restart. */
export class FenceFailedError extends VirtflowError {
  constructor(message: string) {
    super('FenceFailedError', message);
  }
}

const LOCAL_FENCE_SCRIPT = path.join(repoRoot, 'scripts', 'fence-local-host');

/** A fence program finds its tools here, and nothing else of the controller's environment. */
const FENCE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function resolveSecret(name: string, v: FenceEnvValue): string {
  if (typeof v === 'string') return v;
  if ('fromEnv' in v) {
    const value = process.env[v.fromEnv];
    if (value === undefined)
      throw new FenceFailedError(
        `fence variable ${name}: the controller has no ${v.fromEnv} in its environment`,
      );
    return value;
  }
  try {
    return fs.readFileSync(v.fromFile, 'utf8').trim();
  } catch (err) {
    throw new FenceFailedError(
      `fence variable ${name}: ${v.fromFile} cannot be read: ${(err as Error).message}`,
    );
  }
}

export interface FenceTarget {
  hostId: string;
  /** The host's run directory on this machine (one pidfile per guest): the local stack's fence reads it. */
  hostDir: string;
  /** The agent pid the host last registered; the local fence kills it only if its command line names the host. */
  agentPid: number;
}

/**
 * Runs one fence and returns its output; throws unless it exited 0 within its timeout. No
 * shell is involved, the environment holds only what the driver names, and every secret's
 * value is blanked out of the output before anyone sees it.
 */
export async function runFence(driver: FenceDriver, target: FenceTarget): Promise<string> {
  const base = { PATH: FENCE_PATH, VIRTFLOW_FENCE_HOST: target.hostId };
  let argv: string[];
  let env: Record<string, string>;
  const secrets: string[] = [];
  if (driver.driver === 'local-stack') {
    argv = ['bash', LOCAL_FENCE_SCRIPT];
    env = {
      ...base,
      VIRTFLOW_FENCE_HOST_DIR: target.hostDir,
      VIRTFLOW_FENCE_AGENT_PID: String(target.agentPid),
    };
  } else {
    argv = driver.argv;
    env = { ...base };
    for (const [name, v] of Object.entries(driver.env)) {
      env[name] = resolveSecret(name, v);
      if (typeof v !== 'string' && env[name]) secrets.push(env[name]);
    }
  }
  const redact = (text: string) => secrets.reduce((t, s) => t.split(s).join('***'), text);
  const { hostId } = target;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env, shell: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => (output = (output + b.toString()).slice(-4000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), driver.timeoutSec * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new FenceFailedError(`fence of ${hostId} could not run ${argv[0]}: ${redact(err.message)}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const said = redact(output.trim()) || 'no output';
      if (code === 0) resolve(said);
      else if (signal)
        reject(
          new FenceFailedError(`fence of ${hostId} did not finish within ${driver.timeoutSec} s: ${said}`),
        );
      else reject(new FenceFailedError(`fence of ${hostId} exited ${code}: ${said}`));
    });
  });
}
