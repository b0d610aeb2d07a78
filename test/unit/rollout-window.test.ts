import { batchSize, rolloutRequestSchema } from '../../domain/rollout';

describe('rolling patch window', () => {
  test.each([
    [1, 40, 1],
    [5, 3, 5],
    ['10%', 40, 4],
    ['10%', 5, 1],
    ['100%', 7, 7],
  ] as const)('max-unavailable %s over %i hosts lets %i out at once', (maxUnavailable, hosts, expected) => {
    expect(batchSize(maxUnavailable, hosts)).toBe(expected);
  });

  test('a request gives exactly one of hosts or cluster, and fills the defaults once', () => {
    expect(rolloutRequestSchema.safeParse({ name: 'nov', patch: 'p1' }).error?.issues[0]).toMatchObject({
      path: ['hosts'],
      message: 'give exactly one of hosts or cluster',
    });
    expect(rolloutRequestSchema.parse({ name: 'nov', patch: 'p1', cluster: 'local' })).toMatchObject({
      order: 'fastest',
      canaryHosts: 1,
      maxUnavailable: 1,
      failureBudget: 0,
    });
    expect(
      rolloutRequestSchema.safeParse({ name: 'nov', patch: 'p1', cluster: 'c', maxUnavailable: 'half' }).error
        ?.issues[0].message,
    ).toBe('must be a count or a percentage like "10%"');
  });
});
