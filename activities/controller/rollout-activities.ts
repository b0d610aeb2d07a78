import type { Client } from '@temporalio/client';
import { parseInput, ValidationError } from '../../domain/errors';
import { workflowIds } from '../../domain/names';
import { rolloutRequestSchema, type RolloutSpec } from '../../domain/rollout';
import type { Inventory } from '../../inventory/db';
import { recentPlacementHosts } from '../../inventory/placement-view';
import { readRecentUsage, readUsage } from '../../inventory/reservations';

/** Controller-side steps of a rolling patch: the plan and the capacity check before each batch. */
export function createRolloutActivities(inv: Inventory, client: () => Promise<Client>) {
  return {
    /** Validates the request and orders the hosts as `order` says (see the request schema). */
    async planRollout(input: unknown): Promise<{ spec: RolloutSpec; hosts: string[] }> {
      const spec = parseInput(rolloutRequestSchema, input, '');
      const docs = spec.hosts
        ? await inv.hosts.find({ _id: { $in: spec.hosts } }).toArray()
        : await inv.hosts.find({ cluster: spec.cluster }).toArray();
      if (spec.hosts) {
        const missing = spec.hosts.filter((h) => !docs.some((d) => d._id === h));
        if (missing.length)
          throw new ValidationError('hosts', `no host named ${missing.map((m) => `"${m}"`).join(', ')}`);
      } else if (docs.length === 0) {
        throw new ValidationError('cluster', `cluster "${spec.cluster}" has no hosts`);
      }
      let hosts = spec.hosts ?? docs.map((d) => d._id).sort();
      if (spec.order !== 'given') {
        // Load is the memory to evacuate: it, not the VM count, sets how long a host is out.
        const usage = await readUsage(inv, hosts);
        const load = (h: string) => usage.get(h)?.runningMemoryMiB ?? 0;
        const lightest = [...hosts].sort((a, b) => load(a) - load(b) || (a < b ? -1 : 1));
        if (spec.order === 'least-loaded') hosts = lightest;
        else {
          const canaries = lightest.slice(0, spec.canaryHosts);
          hosts = [...canaries, ...lightest.slice(spec.canaryHosts).reverse()];
        }
      }
      return { spec, hosts };
    },

    /**
     * Which of `batch` can go out of service now, next to the hosts already out (`busy`): the
     * hosts staying in service must have the free memory to take the running VMs of all of them.
     * Reads the shared placement snapshot: a host start must not cost a scan of every VM.
     */
    async fitBatch(req: { batch: string[]; busy?: string[] }): Promise<{ fits: string[]; reason?: string }> {
      const hosts = await recentPlacementHosts(inv);
      // Hosts out of service only lose VMs, and arrivals on the others are counted by their
      // claims: the shared snapshot errs on the side of less free memory, never more.
      const usage = await readRecentUsage(inv);
      const leaving = new Set([...req.batch, ...(req.busy ?? [])]);
      const staying = hosts.filter((h) => !leaving.has(h.id) && !h.maintenance && h.state === 'up');
      let free = staying.reduce((sum, h) => sum + h.allocatable.memoryMiB - h.used.memoryMiB, 0);
      for (const hostId of req.busy ?? []) free -= usage.get(hostId)?.runningMemoryMiB ?? 0;
      const fits: string[] = [];
      for (const hostId of req.batch) {
        const needs = usage.get(hostId)?.runningMemoryMiB ?? 0;
        if (needs > free) {
          return {
            fits,
            reason: `the hosts staying in service lack memory for ${hostId}'s VMs (${needs} MiB needed, ${free} MiB free)`,
          };
        }
        free -= needs;
        fits.push(hostId);
      }
      return { fits };
    },

    /**
     * Which of these patch runs have ended, and how: the safety net for hosts a rollout started
     * before it continued as new, whose run might end without reporting (terminated by hand).
     */
    async endedPatchRuns(req: {
      runs: { hostId: string; runId: string }[];
    }): Promise<
      { hostId: string; runId: string; outcome: 'patched' | 'skipped' | 'failed'; reason?: string }[]
    > {
      const c = await client();
      const ended = [];
      for (const { hostId, runId } of req.runs) {
        const handle = c.workflow.getHandle(workflowIds.host(hostId), runId);
        const { status } = await handle.describe();
        if (status.name === 'RUNNING') continue;
        if (status.name === 'COMPLETED') {
          const r = (await handle.result()) as { outcome: 'patched' | 'skipped'; reason?: string };
          ended.push({ hostId, runId, outcome: r.outcome, reason: r.reason });
        } else {
          ended.push({
            hostId,
            runId,
            outcome: 'failed' as const,
            reason: `the patch run ended ${status.name.toLowerCase()}`,
          });
        }
      }
      return ended;
    },
  };
}
