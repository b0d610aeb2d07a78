import { decideConvergence, MAX_TRANSFER_SEC, newTracker } from '../../domain/convergence';
import { migrationPolicySchema, migrationSliceMs } from '../../domain/migration';

const GiB = 1024 ** 3;
const policy = (over: Record<string, unknown> = {}) => migrationPolicySchema.parse(over);

/** Feeds QEMU reports one second apart through the policy and returns every action taken. */
function drive(
  reports: { remainingBytes: number; iteration: number; status?: string }[],
  p = policy(),
  memoryMiB = 1024,
) {
  let tracker = newTracker(0);
  return reports.map((r, i) => {
    const step = decideConvergence(tracker, { status: 'active', ...r }, p, memoryMiB, (i + 1) * 1000);
    tracker = step.tracker;
    return step.action;
  });
}

describe('live-migration convergence policy', () => {
  test('steps the downtime limit up every few dirty-sync rounds, never past the last step', () => {
    const actions = drive(
      Array.from({ length: 14 }, (_, i) => ({ remainingBytes: GiB - i * 1000, iteration: i + 1 })),
      policy({ maxDowntimeMs: 300, downtimeStepsMs: [500, 1000], roundsPerDowntimeStep: 3 }),
    );
    expect(actions.filter((a) => a.kind === 'set-downtime')).toEqual([
      { kind: 'set-downtime', downtimeMs: 500 },
      { kind: 'set-downtime', downtimeMs: 1000 },
    ]);
    expect(actions.findIndex((a) => a.kind === 'set-downtime')).toBe(3);
  });

  test('gives up when the remaining bytes reach no new low within the no-progress timeout', () => {
    const actions = drive(
      Array.from({ length: 8 }, () => ({ remainingBytes: GiB, iteration: 1 })),
      policy({ noProgressTimeoutSec: 5 }),
    );
    const giveUp = actions.find((a) => a.kind === 'give-up');
    expect(giveUp).toMatchObject({ reason: expect.stringMatching(/^no progress for 6 s/) });
    expect(actions.slice(0, 5).every((a) => a.kind === 'none')).toBe(true);
  });

  test('on timeout, aborts or forces completion as the policy says (post-copy when enabled)', () => {
    const slow = Array.from({ length: 70 }, (_, i) => ({ remainingBytes: GiB - i, iteration: 1 }));
    const base = { completionTimeoutSecPerGiB: 60, noProgressTimeoutSec: 600 };
    expect(drive(slow, policy(base)).find((a) => a.kind !== 'none')).toMatchObject({
      kind: 'give-up',
      reason: 'not complete after 61 s (limit 60 s for 1024 MiB)',
    });
    expect(
      drive(slow, policy({ ...base, onTimeout: 'force-complete' })).find((a) => a.kind !== 'none'),
    ).toMatchObject({ kind: 'force', mode: 'pause' });
    const forced = drive(slow, policy({ ...base, onTimeout: 'force-complete', postCopy: true }));
    expect(forced.filter((a) => a.kind === 'force')).toEqual([
      expect.objectContaining({ kind: 'force', mode: 'post-copy' }),
    ]);
  });

  test('leaves a migration alone once it is past pre-copy', () => {
    const actions = drive(
      Array.from({ length: 10 }, () => ({ remainingBytes: GiB, iteration: 9, status: 'postcopy-active' })),
      policy({ noProgressTimeoutSec: 5 }),
    );
    expect(actions.every((a) => a.kind === 'none')).toBe(true);
  });

  test('scales the completion limit with guest memory, with a floor for small guests', () => {
    const p = policy({ completionTimeoutSecPerGiB: 80, noProgressTimeoutSec: 600 });
    const at = (memoryMiB: number, sec: number) =>
      decideConvergence(
        newTracker(0),
        { status: 'active', remainingBytes: 1, iteration: 1 },
        p,
        memoryMiB,
        sec * 1000,
      ).action.kind;
    expect(at(2048, 159)).toBe('none');
    expect(at(2048, 161)).toBe('give-up');
    // 1/8 GiB is the floor: a 64 MiB guest gets 10 s, not 5.
    expect(at(64, 9)).toBe('none');
    expect(at(64, 11)).toBe('give-up');
  });
});

describe('live migration slices: a long transfer stays within the history limit', () => {
  const slicesFor = (hours: number) => {
    let elapsed = 0;
    let n = 0;
    while (elapsed < hours * 3_600_000) {
      elapsed += migrationSliceMs(elapsed);
      n++;
    }
    return n;
  };

  test('2 s slices while an operator watches it start, then longer, never over 30 s', () => {
    expect(migrationSliceMs(0)).toBe(2_000);
    expect(migrationSliceMs(60_000)).toBe(2_000);
    expect(migrationSliceMs(300_000)).toBe(10_000);
    expect(migrationSliceMs(10 * 3_600_000)).toBe(30_000);
  });

  test("a day's transfer takes under 20,000 history events (some six per slice) of Temporal's 51,200", () => {
    // Fixed 2 s slices: 43,200 slices a day, past the limit after about 4.7 hours.
    expect(slicesFor(24) * 6).toBeLessThan(20_000);
    expect(slicesFor(4.7) * 6).toBeLessThan(5_000);
  });

  test('no policy lets a transfer outlast its history: the largest VM at the longest timeout gives up after two days', () => {
    const longest = policy({ completionTimeoutSecPerGiB: 86_400 });
    const at = (sec: number) =>
      decideConvergence(
        newTracker(0),
        { status: 'active', remainingBytes: GiB, iteration: 1 },
        longest,
        1 << 20,
        sec * 1000,
      ).action.kind;
    // A 1 TiB VM at a day per GiB would be allowed almost three years.
    expect(at(MAX_TRANSFER_SEC - 1)).not.toBe('give-up');
    expect(at(MAX_TRANSFER_SEC + 1)).toBe('give-up');
    expect(slicesFor(MAX_TRANSFER_SEC / 3600) * 6).toBeLessThan(40_000);
  });
});
