import { ApiClient } from '../../client/api-client';
import { forecastRollout, type RolloutForecast } from '../../client/rollout-forecast';
import { createApiToken } from '../../inventory/api-tokens';
import { buildApiServer } from '../../server/app';
import { hostPatchSeconds, defaultTimingModel } from '../../hypervisor/sim/timing-model';
import { populateSimFleet } from '../../inventory/sim-fleet';
import { TestStack } from '../helpers/test-stack';

describe('rollout --dry-run', () => {
  let stack: TestStack;

  beforeAll(async () => {
    stack = await TestStack.create('rollout-forecast');
    await populateSimFleet(stack.inventory, { cluster: 'lab', hosts: 4, vms: 12, seed: 3 });
  });
  afterAll(() => stack.stop());

  test('forecasts on a simulated twin: makespan from the timing model, peak within the limit, nothing real touched', async () => {
    const before = await stack.inventory.hosts.find({ cluster: 'lab' }).toArray();
    const vmsBefore = await stack.inventory.vms.find({}).sort({ _id: 1 }).toArray();
    const forecast = await forecastRollout(stack.client, stack.config, stack.inventory, {
      name: 'lab-nov',
      patch: 'security-2026-11',
      cluster: 'lab',
      maxUnavailable: 2,
    });

    expect(forecast.progress.phase).toBe('done');
    expect(forecast.hosts.map((h) => h.hostId).sort()).toEqual(before.map((h) => h._id).sort());
    expect(forecast.hosts.every((h) => h.state === 'patched')).toBe(true);
    expect(forecast.peakUnavailable).toBeGreaterThanOrEqual(1);
    expect(forecast.peakUnavailable).toBeLessThanOrEqual(2);
    // A host out of service at least as long as the model's patch of an empty host, and the
    // whole rollout no shorter than a canary plus one more round.
    const emptyHost = hostPatchSeconds(defaultTimingModel, [], 2);
    for (const h of forecast.hosts) expect(h.outOfServiceSec).toBeGreaterThanOrEqual(emptyHost - 10);
    expect(forecast.makespanSec).toBeGreaterThanOrEqual(2 * emptyHost - 10);

    // The real hosts were not touched, and the twin is gone.
    const after = await stack.inventory.hosts.find({ cluster: 'lab' }).toArray();
    expect(after.map((h) => [h._id, h.patchLevel, h.maintenance])).toEqual(
      before.map((h) => [h._id, h.patchLevel, h.maintenance]),
    );
    expect(await stack.inventory.hosts.countDocuments({ cluster: { $ne: 'lab' } })).toBe(0);
    const vmsAfter = await stack.inventory.vms.find({}).sort({ _id: 1 }).toArray();
    expect(vmsAfter.map((v) => [v._id, v.host, v.state, v.revision])).toEqual(
      vmsBefore.map((v) => [v._id, v.host, v.state, v.revision]),
    );
  }, 600_000);

  test('names the field when the request is bad, before anything is created', async () => {
    await expect(
      forecastRollout(stack.client, stack.config, stack.inventory, {
        name: 'x',
        patch: 'security-2026-11',
        cluster: 'nowhere',
      }),
    ).rejects.toThrow(/cluster: cluster "nowhere" has no hosts/);
    await expect(
      forecastRollout(stack.client, stack.config, stack.inventory, {
        name: 'x',
        patch: 'security-2026-11',
        cluster: 'lab',
        maxUnavailable: '150%x',
      }),
    ).rejects.toThrow(/maxUnavailable/);
    expect(await stack.inventory.hosts.countDocuments({ cluster: { $ne: 'lab' } })).toBe(0);
  });

  test('through the API, a fleet grant gets the same forecast, run on the server', async () => {
    const { token } = await createApiToken(
      stack.inventory,
      { name: 'fleet-viewer', grants: [{ project: '*', role: 'viewer' }] },
      'test',
    );
    const app = await buildApiServer({ inv: stack.inventory, client: stack.client, config: stack.config });
    try {
      const base = await app.listen({ host: '127.0.0.1', port: 0 });
      const api = new ApiClient(base, token);
      const forecast = await api.request<RolloutForecast>('POST', '/v1/rollouts/forecast', {
        name: 'lab-api',
        patch: 'security-2026-11',
        hosts: ['sim-lab-0001', 'sim-lab-0002'],
        maxUnavailable: 1,
      });
      expect(forecast.progress.phase).toBe('done');
      expect(forecast.hosts.map((h) => [h.hostId, h.state]).sort()).toEqual([
        ['sim-lab-0001', 'patched'],
        ['sim-lab-0002', 'patched'],
      ]);
      expect(forecast.peakUnavailable).toBe(1);
      const emptyHost = hostPatchSeconds(defaultTimingModel, [], 2);
      expect(forecast.makespanSec).toBeGreaterThanOrEqual(2 * emptyHost - 10);
      await expect(
        api.request('POST', '/v1/rollouts/forecast', {
          name: 'x',
          patch: 'security-2026-11',
          cluster: 'nowhere',
        }),
      ).rejects.toThrow(/cluster: cluster "nowhere" has no hosts/);
      expect(await stack.inventory.hosts.countDocuments({ cluster: { $ne: 'lab' } })).toBe(0);
    } finally {
      await app.close();
    }
  }, 600_000);
});
