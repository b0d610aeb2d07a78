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

/** The most hosts out of service at any one moment. */
export function peakOverlap(spans: ClosedSpan[]): number {
  const edges = spans.flatMap((s) => [
    { t: s.startSec, d: 1 },
    { t: s.endSec, d: -1 },
  ]);
  // A host that returns at t makes room for one leaving at t: returns count first.
  edges.sort((a, b) => a.t - b.t || a.d - b.d);
  let open = 0;
  let peak = 0;
  for (const e of edges) peak = Math.max(peak, (open += e.d));
  return peak;
}
