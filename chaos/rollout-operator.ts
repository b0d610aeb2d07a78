import { describeError } from '../client/cli';
import type { rolloutOperations } from '../client/rollout-operations';

/** Halts the operator answers with retry and resume before it aborts the rollout. */
const PATIENCE = 3;

export interface OperatorTiming {
  /** How often the operator looks at the rollout. */
  pollMs: number;
  /** How long a halted rollout waits before the operator acts: killed processes are back by then. */
  settleMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The chaos run's operator for its rolling patch. A rollout halts and waits for an operator
 * when hosts fail over its budget, or when no host has room for the next host's VMs (kills keep
 * agents away, so capacity comes and goes). Nobody would answer in a chaos run, and the run
 * would wait forever; so this answers as an operator would: it waits for the stack to be whole
 * again, retries the failed hosts and resumes, up to PATIENCE times, and then aborts. It returns
 * what it did, for the operation's record. `ended` says when the rollout's run is over.
 */
export async function operateRollout(
  rollouts: Pick<ReturnType<typeof rolloutOperations>, 'status' | 'retry' | 'resume' | 'abort'>,
  name: string,
  ended: () => boolean,
  log: (line: string) => void,
  timing: OperatorTiming = { pollMs: 5_000, settleMs: 30_000 },
): Promise<string[]> {
  const actions: string[] = [];
  // Sleeps that end as soon as the rollout does, so the operation's record is not held back.
  const wait = async (ms: number) => {
    for (const until = Date.now() + ms; !ended() && Date.now() < until;) await sleep(Math.min(ms, 500));
  };
  while (!ended()) {
    await wait(timing.pollMs);
    const progress = await rollouts.status(name).catch(() => undefined);
    if (!progress || progress.phase !== 'halted' || progress.aborted) continue;
    await wait(timing.settleMs);
    if (ended()) break;
    const act = async (what: string, control: () => Promise<string>) => {
      const answer = await control().catch((err: unknown) => `refused: ${describeError(err)}`);
      actions.push(`${what}: ${answer}`);
      log(`operator of rollout/${name}: ${what}: ${answer}`);
    };
    if (actions.filter((a) => a.startsWith('resume')).length >= PATIENCE) {
      await act(`abort after ${PATIENCE} halts (last: ${progress.message})`, () => rollouts.abort(name));
      break;
    }
    for (const h of progress.hosts.filter((h) => h.state === 'failed'))
      await act(`retry ${h.hostId}`, () => rollouts.retry(name, h.hostId));
    await act(`resume (halted: ${progress.message})`, () => rollouts.resume(name));
  }
  return actions;
}
