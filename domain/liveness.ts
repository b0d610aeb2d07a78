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

/** Why a host counts as lost, or undefined while its agent answers (or it is in maintenance). */
export function lossReason(h: LivenessView, now = Date.now()): string | undefined {
  // A host in maintenance belongs to its maintenance workflow: a patch restarts the agent on purpose.
  if (h.maintenance) return undefined;
  const ageSec = Math.round((now - h.agent.heartbeatAt.getTime()) / 1000);
  if (h.state === 'down') return `its agent stopped (last heartbeat ${ageSec} s ago)`;
  if (!heartbeatFresh(h.agent, now))
    return `its agent missed ${MISSED_FACT_INTERVALS} fact intervals of ${h.agent.factsIntervalMs / 1000} s (last heartbeat ${ageSec} s ago)`;
  return undefined;
}

/** What an operator needs first: does the agent answer, and if not, what HA did about it. */
export function liveness(h: LivenessView, now: number): string {
  if (h.needsOperator) return 'needs-operator';
  if (h.fencedAt) return 'fenced';
  if (h.state === 'down') return 'down';
  return heartbeatFresh(h.agent, now) ? 'alive' : 'unreachable';
}
