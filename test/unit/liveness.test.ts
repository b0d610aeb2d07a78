import { liveness, lossReason, massLoss, MISSED_FACT_INTERVALS } from '../../domain/liveness';

const now = Date.parse('2026-12-02T12:00:00Z');

function host(
  over: {
    ageMs?: number;
    state?: 'up' | 'down' | 'unreachable';
    maintenance?: boolean;
    needsOperator?: string;
    fencedAt?: Date;
  } = {},
) {
  return {
    state: over.state ?? ('up' as const),
    maintenance: over.maintenance ?? false,
    agent: { heartbeatAt: new Date(now - (over.ageMs ?? 1000)), factsIntervalMs: 2000 },
    needsOperator: over.needsOperator,
    fencedAt: over.fencedAt,
  };
}

describe('host liveness', () => {
  test(`a host is lost only after ${MISSED_FACT_INTERVALS} missed fact intervals`, () => {
    expect(lossReason(host({ ageMs: 6000 }), now)).toBeUndefined();
    expect(lossReason(host({ ageMs: 6001 }), now)).toBe(
      'its agent missed 3 fact intervals of 2 s (last heartbeat 6 s ago)',
    );
  });

  test('a stopped agent gets a grace to come back (a restart outside maintenance), none in maintenance', () => {
    expect(lossReason(host({ state: 'down', ageMs: 60_000 }), now)).toBeUndefined();
    expect(lossReason(host({ state: 'down', ageMs: 61_000 }), now)).toBe(
      'its agent stopped 61 s ago and did not come back within 60 s',
    );
    expect(lossReason(host({ state: 'down', ageMs: 11_000 }), now, 10_000)).toMatch(/within 10 s$/);
    expect(lossReason(host({ state: 'down', maintenance: true, ageMs: 600_000 }), now)).toBeUndefined();
  });

  test('HA fences by itself only while at most the allowed share of a cluster looks lost', () => {
    expect(massLoss({ lost: 1, total: 2, name: 'default' }, 0.5)).toBeUndefined();
    expect(massLoss({ lost: 2, total: 3, name: 'default' }, 0.5)).toMatch(
      /^2 of 3 hosts of cluster default look lost at once \(more than 50%\): the controller may be the one cut off/,
    );
    expect(massLoss({ lost: 3, total: 3, name: 'edge' }, 1)).toBeUndefined();
    expect(massLoss({ lost: 1, total: 1, name: 'solo' }, 0.5)).toMatch(/1 of 1 hosts/);
  });

  test('shows the operator what needs them first', () => {
    expect(liveness(host(), now)).toBe('alive');
    expect(liveness(host({ ageMs: 60_000 }), now)).toBe('unreachable');
    expect(liveness(host({ state: 'down' }), now)).toBe('down');
    expect(liveness(host({ state: 'down', fencedAt: new Date(now) }), now)).toBe('fenced');
    expect(liveness(host({ fencedAt: new Date(now), needsOperator: 'fence failed' }), now)).toBe(
      'needs-operator',
    );
  });
});
