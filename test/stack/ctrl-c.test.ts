import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../domain/config';
import { LabNetwork } from '../../scripts/services/lab-network';
import { findFreePort } from '../../scripts/services/processes';
import { liveProcesses, qemuProcessesUnder } from '../../scripts/services/stray-guests';
import { until } from '../helpers/until';

/** Every process whose command line or environment names `dir`: the stack's services, workers and guests. */
function processesOf(dir: string) {
  return liveProcesses(({ pid, argv }) => {
    if (pid === process.pid) return false;
    if (argv.some((a) => a.includes(dir))) return true;
    try {
      return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(dir);
    } catch {
      return false; // exited meanwhile
    }
  });
}

/** `npm start` as a terminal runs it: its own process group, so Ctrl-C can reach all of it. */
class StackRun {
  output = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(env: NodeJS.ProcessEnv) {
    this.child = spawn('npm', ['start'], {
      cwd: repoRoot,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  said(text: string): Promise<true> {
    return until(`npm start to say "${text}"`, async () => this.output.includes(text), 150_000);
  }

  /** What a terminal's Ctrl-C does: SIGINT to every process of the foreground group. */
  ctrlC(): void {
    process.kill(-this.child.pid!, 'SIGINT');
  }
}

describe('npm start stops everything on Ctrl-C', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = path.join(process.env.VIRTFLOW_TEST_RUN_DIR!, 'npm-start');
    fs.mkdirSync(dir, { recursive: true });
    env = {
      ...process.env,
      VIRTFLOW_STACK_DIR: path.join(dir, 'state'),
      VIRTFLOW_DATA_DIR: path.join(dir, 'data'),
      VIRTFLOW_TEMPORAL_PORT: String(await findFreePort()),
      VIRTFLOW_UI_PORT: String(await findFreePort()),
      VIRTFLOW_FERRETDB_PORT: String(await findFreePort()),
      VIRTFLOW_API_ADDRESS: `127.0.0.1:${await findFreePort()}`,
      VIRTFLOW_LOG_LEVEL: 'warn',
    };
    // The stack finds its own services; the test run's must not leak into it.
    for (const name of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'MONGODB_URI', 'VIRTFLOW_DB'])
      delete env[name];
  });

  afterAll(async () => {
    for (const p of processesOf(dir)) process.kill(p.pid, 'SIGKILL');
    await LabNetwork.of(path.join(dir, 'data')).destroy();
  });

  const stopsEverything = async (run: StackRun) => {
    run.ctrlC();
    const left = await until(
      'no process of the stack left',
      async () => processesOf(dir).length === 0 || undefined,
      30_000,
    ).catch(() => processesOf(dir));
    expect(left).toBe(true);
    await run.exited;
    expect(run.output).toContain('virtflow: stopped');
    // Nor a network namespace: with them go every bridge, tap and veth the hosts made.
    expect(await LabNetwork.of(path.join(dir, 'data')).namespaces()).toEqual([]);
  };

  test('Ctrl-C while the demo VM is being created leaves no guest, worker, Temporal or FerretDB behind', async () => {
    const run = new StackRun(env);
    await run.said('creating vm demo-1');
    await stopsEverything(run);
  });

  test('the next start follows what the last one left, runs the guest, and Ctrl-C when idle stops it all', async () => {
    const run = new StackRun(env);
    await run.said('running; press Ctrl-C to stop everything');
    expect(run.output).toMatch(/vm demo-1 is running on host-[abc]/);
    // On network lab, reached from the lab's switch.
    expect(run.output).toMatch(
      /vm demo-1 answers on network lab: 3 packets received of 3 pings to 10\.20\.0\.\d+/,
    );
    expect(qemuProcessesUnder(path.join(dir, 'data'))).toHaveLength(1);
    // The API and its console answer, with the administrator's token the stack made.
    const token = fs.readFileSync(path.join(dir, 'state', 'admin.token'), 'utf8').trim();
    const api = `http://${env.VIRTFLOW_API_ADDRESS}`;
    const who = await until('the API to answer', () =>
      fetch(`${api}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } })
        .then(async (r) => (r.ok ? ((await r.json()) as { actor: string }) : undefined))
        .catch(() => undefined),
    );
    expect(who.actor).toBe('token:local-admin');
    expect((await fetch(`${api}/console/`)).status).toBe(200);
    await stopsEverything(run);
    expect(qemuProcessesUnder(path.join(dir, 'data'))).toHaveLength(0);
  });
});
