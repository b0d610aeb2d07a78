/** A host's span out of service, in modelled seconds. */
export interface ClosedSpan {
  hostId: string;
  startSec: number;
  endSec: number;
}

/** From the first host out to the last host back. */
export function makespanOf(spans: ClosedSpan[]): number {
  if (spans.length === 0) return 0;
  return Math.max(...spans.map((s) => s.endSec)) - Math.min(...spans.map((s) => s.startSec));
}

/** Every host leaving (+1) and returning (-1), in time order. */
function edgesOf(spans: ClosedSpan[]): { t: number; d: number }[] {
  const edges = spans.flatMap((s) => [
    { t: s.startSec, d: 1 },
    { t: s.endSec, d: -1 },
  ]);
  // A host that returns at t makes room for one leaving at t: returns count first.
  return edges.sort((a, b) => a.t - b.t || a.d - b.d);
}

/** The most hosts out of service at any one moment. */
export function peakOverlap(spans: ClosedSpan[]): number {
  let open = 0;
  let peak = 0;
  for (const e of edgesOf(spans)) peak = Math.max(peak, (open += e.d));
  return peak;
}

/** A stretch of modelled time during which fewer hosts than the limit were out of service. */
export interface UnderfullStretch {
  fromSec: number;
  toSec: number;
  out: number;
}

/**
 * Where a window of `limit` hosts was not full between `fromSec` and `toSec` (for a rollout:
 * from the canaries' return to the last host's start, while hosts were still waiting). A slot
 * that loses a whole turn shows up here as a stretch as long as a host's patch.
 */
export function underfullStretches(
  spans: ClosedSpan[],
  limit: number,
  fromSec: number,
  toSec: number,
): UnderfullStretch[] {
  const stretches: UnderfullStretch[] = [];
  let open = 0;
  let last = fromSec;
  for (const e of edgesOf(spans)) {
    const from = Math.max(last, fromSec);
    const to = Math.min(e.t, toSec);
    if (to > from && open < limit) stretches.push({ fromSec: from, toSec: to, out: open });
    open += e.d;
    last = e.t;
  }
  return stretches;
}
