/**
 * Faults an agent injects on purpose, named in VIRTFLOW_FAULTS (comma-separated), so tests and
 * chaos runs can drive the failure paths that real hardware produces only rarely. Unset in
 * production: every check is a no-op.
 */
export type FaultName =
  /** Freeze the destination guest just before verification: it never sends a fresh heartbeat. */
  'freeze-incoming-guest';

export function faultEnabled(name: FaultName, env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.VIRTFLOW_FAULTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .includes(name);
}
