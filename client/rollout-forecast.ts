import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Config } from '../domain/config';
import { parseInput, ValidationError } from '../domain/errors';
import { hostTaskQueue, twinHostPrefix, workflowIds } from '../domain/names';
import { rolloutRequestSchema, type RolloutRequest } from '../domain/rollout';
import { makespanOf, peakOverlap } from '../hypervisor/sim/spans';
import type { Inventory } from '../inventory/db';
import { createTwin, readSimSpans, removeSimCluster } from '../inventory/sim-fleet';
import { startSimulation } from '../worker/simulation';
import type { rollingPatch } from '../workflows';
import { rolloutProgress, type RolloutProgress } from '../workflows/rollout-control';

export interface RolloutForecast {
  /** From the first host out of service to the last back, in modelled seconds. */
  makespanSec: number;
  /** The most hosts out of service at once. */
  peakUnavailable: number;
  maxUnavailable: number | string;
  hosts: { hostId: string; state: string; outOfServiceSec?: number; reason?: string }[];
  progress: RolloutProgress;
}

/**
 * Forecasts a rolling patch: the same `rollingPatch` workflow, run against a simulated twin of
 * the hosts (same capacity, patch level and running VMs) by a controller and a simulated agent
 * inside this process, each on a task queue of its own (so a `virtflow sim up` fleet served
 * elsewhere is never mixed in). Nothing real is touched; the twin is removed
 * afterwards. The makespan is in the timing model's seconds.
 */
export async function forecastRollout(
  client: Client,
  config: Config,
  inv: Inventory,
  input: RolloutRequest,
  onProgress?: (p: RolloutProgress) => void,
): Promise<RolloutForecast> {
  const spec = parseInput(rolloutRequestSchema, input, '');
  const hostIds =
    spec.hosts ?? (await inv.hosts.find({ cluster: spec.cluster }).toArray()).map((h) => h._id).sort();
  if (hostIds.length === 0) throw new ValidationError('cluster', `cluster "${spec.cluster}" has no hosts`);
  const known = await inv.hosts.countDocuments({ _id: { $in: hostIds } });
  if (known !== hostIds.length)
    throw new ValidationError('hosts', 'some of the hosts are not in the inventory');

  const tag = randomBytes(3).toString('hex');
  const taskQueue = `virtflow-forecast-${tag}`;
  const twin = await createTwin(inv, hostIds, tag);
  const simulation = await startSimulation(config, {
    taskQueue,
    simTaskQueue: hostTaskQueue(twinHostPrefix(tag)),
  });
  try {
    const twinHosts = hostIds.map((h) => twin.hosts.get(h)!);
    const handle = await client.workflow.start<typeof rollingPatch>('rollingPatch', {
      taskQueue,
      workflowId: workflowIds.rollout(`${spec.name}-forecast-${tag}`),
      args: [{ ...spec, cluster: undefined, hosts: twinHosts }],
      staticSummary: `Forecast of rollout ${spec.name} on a simulated twin of ${hostIds.length} host(s)`,
    });
    const watch = setInterval(() => {
      if (onProgress) handle.query(rolloutProgress).then(onProgress, () => undefined);
    }, 1000);
    const progress = await handle.result().finally(() => clearInterval(watch));
    const spans = await readSimSpans(inv, twinHosts);
    const real = new Map([...twin.hosts].map(([realId, twinId]) => [twinId, realId]));
    return {
      makespanSec: makespanOf(spans),
      peakUnavailable: peakOverlap(spans),
      maxUnavailable: spec.maxUnavailable,
      hosts: progress.hosts.map((h) => {
        const span = spans.find((s) => s.hostId === h.hostId);
        return {
          hostId: real.get(h.hostId) ?? h.hostId,
          state: h.state,
          outOfServiceSec: span ? span.endSec - span.startSec : undefined,
          reason: h.reason,
        };
      }),
      progress,
    };
  } finally {
    await simulation.stop();
    await removeSimCluster(inv, twin.cluster);
  }
}
