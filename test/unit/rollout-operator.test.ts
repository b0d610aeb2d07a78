import { operateRollout } from '../../chaos/rollout-operator';
import type { RolloutProgress } from '../../workflows/rollout-control';

/** A rollout that halts whenever the operator lets it go on: what the chaos run's operator faces at worst. */
function alwaysHalting() {
  const calls: string[] = [];
  let ended = false;
  const progress = (): RolloutProgress => ({
    operation: 'rolling-patch',
    phase: 'halted',
    message: '1 host(s) failed, over the budget of 0',
    paused: true,
    aborted: false,
    failures: 1,
    hosts: [
      { hostId: 'host-a', state: 'patched', attempts: 1 },
      { hostId: 'host-b', state: 'failed', attempts: 3, reason: 'agent lost' },
    ],
  });
  const rollouts = {
    status: async () => progress(),
    retry: async (_: string, hostId: string) => (
      calls.push(`retry ${hostId}`),
      `${hostId} will be tried again`
    ),
    resume: async () => (calls.push('resume'), 'resumed'),
    abort: async () => (calls.push('abort'), (ended = true), 'aborting: no new host will start'),
  };
  return { rollouts, calls, ended: () => ended, end: () => (ended = true) };
}

describe("the chaos run's rollout operator", () => {
  test('answers each halt with retry and resume, and aborts at the third halt after those', async () => {
    const r = alwaysHalting();
    const actions = await operateRollout(r.rollouts, 'chaos', r.ended, () => undefined, {
      pollMs: 1,
      settleMs: 1,
    });
    expect(r.calls).toEqual([
      'retry host-b',
      'resume',
      'retry host-b',
      'resume',
      'retry host-b',
      'resume',
      'abort',
    ]);
    expect(actions.at(-1)).toMatch(/^abort after 3 halts \(last: 1 host\(s\) failed, over the budget of 0\)/);
  });

  test('does nothing to a rollout that runs, and stops when it ends', async () => {
    const r = alwaysHalting();
    r.rollouts.status = async () => ({ ...(await alwaysHalting().rollouts.status()), phase: 'rolling' });
    setTimeout(r.end, 50);
    expect(
      await operateRollout(r.rollouts, 'chaos', r.ended, () => undefined, { pollMs: 5, settleMs: 5 }),
    ).toEqual([]);
    expect(r.calls).toEqual([]);
  });

  test('a refused control is recorded with its reason, not thrown', async () => {
    const r = alwaysHalting();
    r.rollouts.resume = async () => {
      throw new Error('the rollout is neither paused nor halted');
    };
    const actions = await operateRollout(r.rollouts, 'chaos', r.ended, () => undefined, {
      pollMs: 1,
      settleMs: 1,
    });
    expect(actions).toContain(
      'resume (halted: 1 host(s) failed, over the budget of 0): refused: the rollout is neither paused nor halted',
    );
  });
});
