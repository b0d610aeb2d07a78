/**
 * Host liveness: an agent writes a heartbeat at every fact interval; one that misses
 * MISSED_FACT_INTERVALS of them counts as lost (placement skips the host, HA fences it).
 */
export const MISSED_FACT_INTERVALS = 3;

interface Heartbeat {
  heartbeatAt: Date;
  factsIntervalMs: number;
}

interface LivenessView {
  state: 'up' | 'down' | 'unreachable';
  maintenance: boolean;
  agent: Heartbeat;
  needsOperator?: string;
  fencedAt?: Date | null;
}

export function heartbeatFresh(h: Heartbeat, now: number): boolean {
  return now - h.heartbeatAt.getTime() <= MISSED_FACT_INTERVALS * h.factsIntervalMs;
}

/** The grace an agent that stopped cleanly gets by default: a restart takes seconds. */
export const DEFAULT_DOWN_GRACE_MS = 60_000;

/**
 * Why a host counts as lost, or undefined while its agent answers (or it is in maintenance).
 * An agent that stopped cleanly (`down`) is given `downGraceMs` to come back: a routine restart
 * outside maintenance must not get its host fenced.
 */
export function lossReason(
  h: LivenessView,
  now = Date.now(),
  downGraceMs = DEFAULT_DOWN_GRACE_MS,
): string | undefined {
  // A host in maintenance belongs to its maintenance workflow: a patch restarts the agent on purpose.
  if (h.maintenance) return undefined;
  const ageMs = now - h.agent.heartbeatAt.getTime();
  const ageSec = Math.round(ageMs / 1000);
  if (h.state === 'down')
    return ageMs > downGraceMs
      ? `its agent stopped ${ageSec} s ago and did not come back within ${Math.round(downGraceMs / 1000)} s`
      : undefined;
  if (!heartbeatFresh(h.agent, now))
    return `its agent missed ${MISSED_FACT_INTERVALS} fact intervals of ${h.agent.factsIntervalMs / 1000} s (last heartbeat ${ageSec} s ago)`;
  return undefined;
}

/**
 * Whether HA may fence hosts of one cluster by itself: not when more than `maxLostFraction` of
 * the cluster's hosts look lost at once. So many hosts failing together is far less likely than
 * the controller (or the database its liveness comes through) being the one cut off.
 */
export function massLoss(
  cluster: { lost: number; total: number; name: string },
  maxLostFraction: number,
): string | undefined {
  if (cluster.total === 0 || cluster.lost / cluster.total <= maxLostFraction) return undefined;
  return (
    `${cluster.lost} of ${cluster.total} hosts of cluster ${cluster.name} look lost at once ` +
    `(more than ${Math.round(maxLostFraction * 100)}%): the controller may be the one cut off, so no host is ` +
    'fenced automatically; check the hosts, then `virtflow host fence <host> --force`'
  );
}

/** What an operator needs first: does the agent answer, and if not, what HA did about it. */
export function liveness(h: LivenessView, now: number): string {
  if (h.needsOperator) return 'needs-operator';
  if (h.fencedAt) return 'fenced';
  if (h.state === 'down') return 'down';
  return heartbeatFresh(h.agent, now) ? 'alive' : 'unreachable';
}
