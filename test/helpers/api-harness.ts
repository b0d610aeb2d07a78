import type { FastifyInstance } from 'fastify';
import type { Grant } from '../../domain/access';
import { createApiToken } from '../../inventory/api-tokens';
import { insertSimImage, populateSimFleet } from '../../inventory/sim-fleet';
import { buildApiServer } from '../../server/app';
import { bundleWorkflows, TestStack } from './test-stack';

/**
 * The API against the real controller, Temporal and FerretDB, on two simulated hosts (the
 * hypervisor is not what API tests are about), with a token per caller named in `grants`.
 * Registers its own beforeAll and afterAll; a file's own beforeAll runs after it.
 */
export function apiHarness(namespace: string, grants: Record<string, Grant[]>) {
  let stack: TestStack;
  let app: FastifyInstance;
  let base = '';
  const tokens: Record<string, string> = {};

  /** A request as `who` (no token when undefined), its JSON answer parsed. */
  const call = async (who: string | undefined, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        ...(who ? { authorization: `Bearer ${tokens[who]}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };

  /** The Server-Sent Events of `<progressUrl>/events`, read as `who` to the stream's end. */
  const streamed = async (who: string, progressUrl: string) => {
    const res = await fetch(`${base}${progressUrl}/events`, {
      headers: { authorization: `Bearer ${tokens[who]}` },
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const stream = await res.text();
    return [...stream.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map(([, name, data]) => ({
      name,
      data: JSON.parse(data),
    }));
  };

  /** Creates a VM through the API as `who` (on `host` when given) and waits for its run to end. */
  const createVm = async (who: string, vmId: string, project: string, host?: string) => {
    const res = await call(who, 'POST', '/v1/vms', { vmId, image: 'sim-image', project, host });
    expect(res.status).toBe(202);
    await stack.client.workflow.getHandle(res.body.workflowId, res.body.runId).result();
    return res.body as { workflowId: string; runId: string; progressUrl: string };
  };

  beforeAll(async () => {
    stack = await TestStack.create(namespace);
    const sim = await stack.startSimAgent();
    await stack.startController(await bundleWorkflows(), { simulationClock: sim.fleet.clock });
    await populateSimFleet(stack.inventory, { hosts: 2, vms: 0, seed: 1 });
    await insertSimImage(stack.inventory, 'test/api');
    for (const [name, g] of Object.entries(grants))
      tokens[name] = (await createApiToken(stack.inventory, { name, grants: g }, 'test')).token;
    app = await buildApiServer(
      { inv: stack.inventory, client: stack.client, config: stack.config },
      { eventIntervalMs: 100 },
    );
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  }, 180_000);
  afterAll(async () => {
    await app?.close();
    await stack?.stop();
  });

  return {
    get stack() {
      return stack;
    },
    get base() {
      return base;
    },
    tokens,
    call,
    streamed,
    createVm,
  };
}
