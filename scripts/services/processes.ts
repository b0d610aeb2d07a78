import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

/** Fails at once, naming the service and the setting to change, when a port is taken. */
export async function assertPortFree(port: number, what: string, setting: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `${what}: port ${port} is already in use; stop what holds it or set ${setting} to a free port`
            : `${what}: cannot bind port ${port}: ${err.message}`,
        ),
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** A free TCP port on loopback, as the kernel hands it out. */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A free TCP port on loopback below 32768, outside the kernel's ephemeral range: the Temporal
 * server records its membership ports in a smallint column.
 */
export async function findFreeLowPort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (
      await assertPortFree(port, '', '').then(
        () => true,
        () => false,
      )
    )
      return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface SpawnOptions {
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * Out of the parent's process group, so a terminal's Ctrl-C (SIGINT to the whole group) reaches
   * only the parent, which then stops its children in order: workers, guests, then the services
   * they write to. A child still in the group would die with the signal, FerretDB before the
   * guests' states are recorded.
   */
  ownProcessGroup?: boolean;
  /** Run as this user (PostgreSQL refuses to run as root). */
  user?: { uid: number; gid: number };
}

/** A long-running child process whose output goes to a log file. */
export class ManagedProcess {
  private exited: Promise<number | null>;
  private exitCode: number | null | undefined;

  /** Every child this process started that has not exited yet. */
  private static readonly live = new Set<ManagedProcess>();

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logPath: string,
  ) {
    ManagedProcess.live.add(this);
    this.exited = new Promise((resolve) => {
      const ended = (code: number | null) => {
        this.exitCode ??= code;
        ManagedProcess.live.delete(this);
        resolve(this.exitCode);
      };
      child.once('exit', (code, signal) => ended(code ?? (signal ? -1 : null)));
      // A command that could not be started never exits: it has ended all the same.
      child.once('error', () => {
        if (child.pid === undefined) ended(-1);
      });
    });
  }

  /**
   * Stops every child still running, including one spawned while a shutdown was under way
   * and never handed to its owner (a service still waiting for its port).
   */
  static async stopAll(): Promise<void> {
    await Promise.all([...ManagedProcess.live].map((p) => p.stop()));
  }

  static spawn(name: string, command: string, args: string[], opts: SpawnOptions): ManagedProcess {
    const log = fs.openSync(opts.logPath, 'a');
    const child = spawn(command, args, {
      stdio: ['ignore', log, log],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      detached: opts.ownProcessGroup ?? false,
      uid: opts.user?.uid,
      gid: opts.user?.gid,
    });
    fs.closeSync(log);
    return new ManagedProcess(name, child, opts.logPath);
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Resolves when `port` accepts connections; rejects if the process exits or time runs out. */
  async waitForPort(port: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running)
        throw new Error(`${this.name} exited before listening on ${port}: ${this.logTail()}`);
      if (await canConnect(port)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.name} did not listen on port ${port} within ${timeoutMs} ms: ${this.logTail()}`);
  }

  /** Resolves when the process has exited, whoever ended it. */
  waitForExit(): Promise<number | null> {
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  logTail(lines = 15): string {
    try {
      return fs.readFileSync(this.logPath, 'utf8').trim().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }
}
