import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { ControllerActivities } from '../../activities/controller/controller-activities';
import { withOperatorErrors } from '../../activities/operator-errors';
import type { HostContract } from '../../activities/host/contract';
import { connectClient } from '../../client/temporal';
import type { Config } from '../../domain/config';
import { CONTROLLER_TASK_QUEUE, hostTaskQueue } from '../../domain/names';
import { runSinks } from '../../worker/workflow-modules';
import { bundleWorkflows, fileConfig, quietRuntime } from './test-stack';
import { HISTORY_DIRS, recordHistories, recordingHistories } from './histories';
import { ensureTestNamespace } from './test-namespace';

export type ControllerMocks = Partial<{
  [K in keyof ControllerActivities]: (...args: never[]) => Promise<unknown>;
}>;
export type HostMocks = Partial<{ [K in keyof HostContract]: (...args: never[]) => Promise<unknown> }>;

/**
 * Runs the real workflow code on the shared Temporal dev server with mocked activities: the
 * controller's task queue and each named host's queue get a worker serving the given mocks, in
 * this file's own namespace. Every call is recorded as `<queue>:<activity>`, so a test can assert
 * what a branch did and in which order.
 */
export class MockedActivities {
  readonly calls: string[] = [];
  readonly config: Config;
  client!: Client;
  private connection!: NativeConnection;
  private bundle!: WorkflowBundle;

  private constructor(name: string) {
    this.config = fileConfig(name).config;
  }

  /**
   * This file's mocked activities in its own namespace: connected before the file's tests, closed
   * after them, with the recorded calls cleared before each test.
   */
  static forFile(name: string): MockedActivities {
    const env = new MockedActivities(name);
    beforeAll(() => env.connect());
    afterAll(() => env.close());
    beforeEach(() => env.calls.splice(0));
    return env;
  }

  private async connect(): Promise<void> {
    quietRuntime();
    await ensureTestNamespace(this.config);
    [this.client, this.connection, this.bundle] = await Promise.all([
      connectClient(this.config),
      NativeConnection.connect({ address: this.config.temporal.address }),
      bundleWorkflows(),
    ]);
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

  private async close(): Promise<void> {
    if (recordingHistories())
      await recordHistories(this.client, this.config.temporal.address, HISTORY_DIRS.mocked, 8);
    await this.client.connection.close();
    await this.connection.close();
  }
}
