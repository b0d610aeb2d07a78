import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { ControllerActivities } from '../../activities/controller-activities';
import { withOperatorErrors } from '../../activities/operator-errors';
import type { HostActivities } from '../../activities/host-activities';
import { connectClient } from '../../client/temporal';
import type { Config } from '../../domain/config';
import { CONTROLLER_TASK_QUEUE, hostTaskQueue } from '../../domain/names';
import { runSinks } from '../../worker/workflow-modules';
import { bundleWorkflows, fileConfig, quietRuntime } from './test-stack';
import { ensureTestNamespace } from './test-namespace';

export type ControllerMocks = Partial<{
  [K in keyof ControllerActivities]: (...args: never[]) => Promise<unknown>;
}>;
export type HostMocks = Partial<{ [K in keyof HostActivities]: (...args: never[]) => Promise<unknown> }>;

/**
 * Runs the real workflow code on the shared Temporal dev server with mocked activities: the
 * controller's task queue and each named host's queue get a worker serving the given mocks, in
 * this file's own namespace. Every call is recorded as `<queue>:<activity>`, so a test can assert
 * what a branch did and in which order.
 */
export class MockedActivities {
  readonly calls: string[] = [];
  private constructor(
    readonly config: Config,
    readonly client: Client,
    private readonly connection: NativeConnection,
    private readonly bundle: WorkflowBundle,
  ) {}

  static async create(name: string): Promise<MockedActivities> {
    quietRuntime();
    const { config } = fileConfig(name);
    await ensureTestNamespace(config);
    const [client, connection, bundle] = await Promise.all([
      connectClient(config),
      NativeConnection.connect({ address: config.temporal.address }),
      bundleWorkflows(),
    ]);
    return new MockedActivities(config, client, connection, bundle);
  }

  /** Runs `body` while workers serve the mocks; the workers stop when it settles. */
  async run<T>(
    mocks: { controller: ControllerMocks; hosts?: Record<string, HostMocks> },
    body: () => Promise<T>,
  ): Promise<T> {
    // Mocks throw the project's own errors, which leave an activity as the real ones do.
    const record = (queue: string, acts: Record<string, (...args: never[]) => Promise<unknown>>) =>
      withOperatorErrors(
        Object.fromEntries(
          Object.entries(acts).map(([name, fn]) => [
            name,
            (...args: never[]) => {
              this.calls.push(`${queue}:${name}`);
              return fn(...args);
            },
          ]),
        ),
      );
    const namespace = this.config.temporal.namespace;
    const workers = await Promise.all([
      Worker.create({
        connection: this.connection,
        namespace,
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowBundle: this.bundle,
        sinks: runSinks(),
        activities: record('controller', mocks.controller),
      }),
      ...Object.entries(mocks.hosts ?? {}).map(([hostId, acts]) =>
        Worker.create({
          connection: this.connection,
          namespace,
          taskQueue: hostTaskQueue(hostId),
          activities: record(hostId, acts),
        }),
      ),
    ]);
    let outcome: Promise<T> | undefined;
    const done = (async () => {
      outcome = body();
      await outcome.catch(() => undefined);
    })();
    await Promise.all(workers.map((w) => w.runUntil(done)));
    return outcome!;
  }

  /** The calls made so far to one queue (`controller` or a host id), in order. */
  callsTo(queue: string): string[] {
    return this.calls.filter((c) => c.startsWith(`${queue}:`)).map((c) => c.slice(queue.length + 1));
  }

  async close(): Promise<void> {
    await this.client.connection.close();
    await this.connection.close();
  }
}
