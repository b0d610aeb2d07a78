import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import type { Client } from '@temporalio/client';
import type { ControllerActivities } from '../../activities/controller/controller-activities';
import { withOperatorErrors } from '../../activities/operator-errors';
import type { HostContract } from '../../activities/host/contract';
import { connectClient } from '../../client/temporal';
import { installed, type Config } from '../../domain/config';
import { CONTROLLER_TASK_QUEUE, hostTaskQueue } from '../../domain/names';
import { runSinks } from '../../worker/workflow-modules';
import { bundleWorkflows, fileConfig, quietRuntime } from './test-stack';
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
    if (process.env.VIRTFLOW_RECORD_HISTORIES)
      await recordHistories(this.client, this.config.temporal.address);
    await this.client.connection.close();
    await this.connection.close();
  }
}

const MAX_PER_TYPE = 8;

/** Where replay.test.ts finds the histories it replays against the current workflow code. */
export const HISTORIES_DIR = path.join(__dirname, '..', 'workflows', 'histories');

/**
 * Writes the history of every run in this file's namespace, so the replay test can prove that
 * workflow code changes keep runs recorded before them working. Run the `workflows` tier with
 * VIRTFLOW_RECORD_HISTORIES=1 to record them again after a deliberate, versioned change.
 */
async function recordHistories(client: Client, address: string): Promise<void> {
  fs.mkdirSync(HISTORIES_DIR, { recursive: true });
  const runs = [];
  for await (const run of client.workflow.list()) runs.push(run);
  runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  const seen = new Map<string, number>();
  const perType = new Map<string, number>();
  for (const run of runs) {
    const n = (seen.get(run.workflowId) ?? 0) + 1;
    seen.set(run.workflowId, n);
    // A sample is enough: forty skipped patchHost runs of one rollout replay alike.
    const ofType = (perType.get(run.type) ?? 0) + 1;
    perType.set(run.type, ofType);
    if (ofType > MAX_PER_TYPE) continue;
    // The CLI writes the proto3 JSON that `historyFromJSON` reads (the SDK's own serializer trips
    // over jest's module registry, which loads protobufjs twice).
    const json = execFileSync(installed.temporal, [
      'workflow',
      'show',
      ...['--address', address, '--namespace', client.options.namespace],
      ...['--workflow-id', run.workflowId, '--run-id', run.runId, '--output', 'json'],
    ]);
    const name = `${client.options.namespace}--${run.workflowId.replace(/[^a-z0-9-]/gi, '_')}--${n}.json`;
    fs.writeFileSync(path.join(HISTORIES_DIR, name), json);
  }
}
