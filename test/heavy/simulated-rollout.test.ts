import { defaultPayloadConverter } from '@temporalio/common';
import { rolloutOperations } from '../../client/rollout-operations';
import { populateSimFleet, readSimSpans } from '../../inventory/sim-fleet';
import { peakOverlap } from '../../hypervisor/sim/spans';
import { workflowIds } from '../../domain/names';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';

/**
 * 200 hosts and 2,000 VMs by default: about 20 minutes on two cores with the embedded
 * FerretDB. `SIM_TEST_HOSTS=60` runs a quicker one while working on the rollout.
 */
const HOSTS = Number(process.env.SIM_TEST_HOSTS ?? 200);
const VMS = HOSTS * 10;

describe(`a simulated fleet of ${HOSTS} hosts and ${VMS} VMs`, () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('simulated-rollout');
    const sim = await stack.startSimAgent();
    await stack.startController(await bundleWorkflows(), { simulationClock: sim.fleet.clock });
    await populateSimFleet(stack.inventory, { hosts: HOSTS, vms: VMS, seed: 7 });
  });
  afterAll(() => stack.stop());

  test('a rolling patch at 10% max-unavailable completes, never exceeds it, and continues as new', async () => {
    const maxUnavailable = Math.floor(HOSTS / 10);
    const rollouts = rolloutOperations(stack.client, stack.config);
    const rolloutStarted = new Date();
    const op = await rollouts.start({
      name: 'fleet',
      patch: 'security-2026-11',
      cluster: 'sim',
      maxUnavailable: '10%',
      historyLimit: 500,
    });
    let maxOut = 0;
    let finished = false;
    const watch = (async () => {
      while (!finished) {
        maxOut = Math.max(
          maxOut,
          await stack.inventory.hosts.countDocuments({ cluster: 'sim', maintenance: true }),
        );
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    const result = await op.result();
    finished = true;
    const clock = stack.simAgent!.fleet.clock;
    console.log(`simulated rollout: ${clock.now()} modelled s in ${clock.steps} clock steps`);
    await watch;

    expect(result.phase).toBe('done');
    expect(result.hosts.filter((h) => h.state === 'patched')).toHaveLength(HOSTS);
    const hosts = await stack.inventory.hosts.find({ cluster: 'sim' }).toArray();
    expect(hosts.every((h) => h.patchLevel === '2026.11.1' && !h.maintenance)).toBe(true);
    // Every VM still runs, exactly once, on a host the simulated hypervisor agrees on.
    const vms = await stack.inventory.vms.find({}).toArray();
    expect(vms).toHaveLength(VMS);
    expect(vms.every((v) => v.state === 'running')).toBe(true);
    const fleet = stack.simAgent!.fleet;
    for (const v of vms) {
      const holders = [];
      for (const h of hosts) if ((await fleet.host(h._id)).guests.has(v._id)) holders.push(h._id);
      expect(holders).toEqual([v.host]);
    }
    // Never more than max-unavailable out of service: seen live and in modelled time.
    expect(maxOut).toBeGreaterThan(1);
    expect(maxOut).toBeLessThanOrEqual(maxUnavailable);
    const spans = await readSimSpans(
      stack.inventory,
      hosts.map((h) => h._id),
    );
    expect(spans).toHaveLength(HOSTS);
    expect(peakOverlap(spans)).toBeLessThanOrEqual(maxUnavailable);
    // The parent's history stayed bounded: it continued as new at least once.
    const runs = [];
    for await (const w of stack.client.workflow.list({ query: `WorkflowId = "rollout/fleet"` })) runs.push(w);
    expect(runs.length).toBeGreaterThan(1);
    for (const r of runs) expect(r.historyLength).toBeLessThanOrEqual(1000);
    // The window did not drain for it: later runs began with hosts still in flight, which
    // finished there, each host patched by one run on its first attempt.
    const carriedInFlight = [];
    for (const r of runs) {
      const history = await stack.client.workflow.getHandle(r.workflowId, r.runId).fetchHistory();
      const input = history.events?.[0].workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
      const carried =
        input[1] && defaultPayloadConverter.fromPayload<{ hosts: { state: string }[] }>(input[1]);
      if (carried) carriedInFlight.push(carried.hosts.filter((h) => h.state === 'patching').length);
    }
    expect(carriedInFlight).toHaveLength(runs.length - 1);
    expect(Math.max(...carriedInFlight)).toBeGreaterThan(0);
    expect(result.hosts.every((h) => h.attempts === 1)).toBe(true);
    // Other test files share the Temporal server: count only this fleet's runs, since this rollout began.
    const fleetRuns = new Set(hosts.map((h) => workflowIds.host(h._id)));
    let patchRuns = 0;
    for await (const w of stack.client.workflow.list({ query: `WorkflowType = "patchHost"` }))
      if (fleetRuns.has(w.workflowId) && w.startTime >= rolloutStarted) patchRuns++;
    expect(patchRuns).toBe(HOSTS);
  }, 3_600_000);
});
