import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isProcessRunning } from '../../hypervisor/qemu-host';
import type { StepResult } from './contract';

/**
 * One patch step at a time on a host, surviving the agent. A step runs in its own process group
 * (so a timeout kills all of it), which also means it outlives an agent killed mid-step; the
 * retried activity then lands on the next agent while the first run still applies the patch.
 * So the running step is recorded in a lock file beside its output and exit code:
 *
 * - the same activity retried (same owner) adopts the run: it waits for it, or reads the
 *   result it left, and never starts the executable a second time;
 * - another step while one runs is refused (the workflow retries it later);
 * - a lock whose process is gone and whose owner is someone else is stale and replaced.
 */
export interface StepRun {
  /** Who runs it: the workflow run and activity, the same across the activity's retries. */
  owner: string;
  file: string;
  env: NodeJS.ProcessEnv;
  timeoutMs: number;
  signal: AbortSignal;
  /** Called while waiting, so the activity heartbeats. */
  onWait: () => void;
}

interface Lock {
  owner: string;
  pid: number;
  file: string;
  startedAt: number;
  timeoutMs: number;
}

/** The step of another run still runs on this host: retry later. */
export class StepBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StepBusyError';
  }
}

export function patchStepFiles(dir: string) {
  return {
    lock: path.join(dir, 'current.json'),
    output: path.join(dir, 'output.log'),
    exitCode: path.join(dir, 'exit-code'),
  };
}

function readLock(file: string): Lock | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Lock;
  } catch {
    return undefined;
  }
}

const tail = (file: string) => {
  try {
    return fs.readFileSync(file, 'utf8').slice(-4096).trim();
  } catch {
    return '';
  }
};

/** The recorded step still runs: its pid is alive and (not recycled) still runs its file. */
function stillRuns(lock: Lock): boolean {
  if (!isProcessRunning(lock.pid)) return false;
  try {
    return fs.readFileSync(`/proc/${lock.pid}/cmdline`, 'utf8').includes(lock.file);
  } catch {
    return false;
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Waits for the recorded step to end and returns what it left: its exit code, or a timeout
 * once its own deadline has passed (its whole group is then killed).
 */
async function awaitRun(
  dir: string,
  lock: Lock,
  run: Pick<StepRun, 'signal' | 'onWait'>,
): Promise<StepResult> {
  const files = patchStepFiles(dir);
  let timedOut = false;
  let aborted = false;
  while (stillRuns(lock)) {
    if (run.signal.aborted) {
      aborted = true;
      killGroup(lock.pid);
    } else if (Date.now() - lock.startedAt > lock.timeoutMs) {
      timedOut = true;
      killGroup(lock.pid);
    }
    run.onWait();
    await new Promise((r) => setTimeout(r, 100));
  }
  // The lock stays: a retry of this activity (its agent died before reporting) reads the
  // result here instead of running the step again. Another owner replaces it.
  const code = Number.parseInt(tail(files.exitCode), 10);
  return {
    exitCode: Number.isNaN(code) || timedOut || aborted ? null : code,
    timedOut,
    output: tail(files.output),
  };
}

/** Runs (or adopts) one patch step under the host's step lock. */
export async function runPatchStepLocked(dir: string, run: StepRun): Promise<StepResult> {
  fs.mkdirSync(dir, { recursive: true });
  const files = patchStepFiles(dir);
  const held = readLock(files.lock);
  if (held?.owner === run.owner) return awaitRun(dir, held, run);
  if (held && stillRuns(held))
    throw new StepBusyError(
      `another patch step (${path.basename(path.dirname(held.file))}/${path.basename(held.file)}, pid ${held.pid}) still runs on this host`,
    );
  fs.rmSync(files.exitCode, { force: true });
  // The wrapper records the exit code itself, so the result survives the agent that started it.
  const child = spawn(
    'bash',
    ['-c', '"$0" >"$1" 2>&1; echo $? >"$2"', run.file, files.output, files.exitCode],
    {
      env: run.env,
      detached: true,
      stdio: 'ignore',
    },
  );
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid!));
    child.once('error', reject);
  });
  child.unref();
  const lock: Lock = {
    owner: run.owner,
    pid,
    file: run.file,
    startedAt: Date.now(),
    timeoutMs: run.timeoutMs,
  };
  fs.writeFileSync(files.lock, JSON.stringify(lock));
  return awaitRun(dir, lock, run);
}
