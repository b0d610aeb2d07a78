import { liveness, lossReason, MISSED_FACT_INTERVALS } from '../../domain/liveness';

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

  test('a stopped agent makes its host lost at once, unless the host is in maintenance', () => {
    expect(lossReason(host({ state: 'down' }), now)).toBe('its agent stopped (last heartbeat 1 s ago)');
    expect(lossReason(host({ state: 'down', maintenance: true, ageMs: 600_000 }), now)).toBeUndefined();
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
