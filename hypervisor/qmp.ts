import { EventEmitter } from 'node:events';
import net from 'node:net';

/** A QMP error reply or transport failure, carrying the command it answered. */
export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    message: string,
  ) {
    super(`QMP ${command}: ${message}`);
    this.name = 'QmpError';
  }
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp: { seconds: number; microseconds: number };
}

/** Replies we read; QEMU's schema is larger, these are the fields virtflow uses. */
export interface QmpCommands {
  'query-status': { args: undefined; result: { running: boolean; status: string } };
  'query-version': { args: undefined; result: { qemu: { major: number; minor: number; micro: number } } };
  'query-migrate': { args: undefined; result: MigrationInfo };
  cont: { args: undefined; result: Record<string, never> };
  stop: { args: undefined; result: Record<string, never> };
  quit: { args: undefined; result: Record<string, never> };
  system_powerdown: { args: undefined; result: Record<string, never> };
}

export interface MigrationInfo {
  status?: string;
  'total-time'?: number;
  'expected-downtime'?: number;
  downtime?: number;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    'dirty-sync-count': number;
    'dirty-pages-rate': number;
    mbps: number;
  };
  'error-desc'?: string;
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * A small QMP client over a unix socket: replies are matched to commands by id, events are
 * emitted as 'event', and each command has its own timeout so a wedged QEMU cannot hang an
 * activity forever.
 */
export class QmpClient extends EventEmitter {
  private buffer = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private closed = false;

  private constructor(
    private readonly socket: net.Socket,
    readonly socketPath: string,
  ) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('close', () => this.failAll(new QmpError('(connection)', 'Disconnected', 'connection closed')));
    socket.on('error', (err) => this.failAll(new QmpError('(connection)', 'SocketError', err.message)));
  }

  /** Connects, waits for the greeting and negotiates capabilities. */
  static async connect(socketPath: string, timeoutMs = 5000): Promise<QmpClient> {
    if (Buffer.byteLength(socketPath) > 107) {
      throw new QmpError('(connect)', 'PathTooLong', `socket path is longer than 107 bytes: ${socketPath}`);
    }
    const socket = net.connect(socketPath);
    const greeting = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new QmpError('(connect)', 'Timeout', `no greeting from ${socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new QmpError('(connect)', 'SocketError', `${socketPath}: ${err.message}`));
      });
      let seen = '';
      const onData = (chunk: Buffer) => {
        seen += chunk.toString('utf8');
        if (seen.includes('\n')) {
          clearTimeout(timer);
          socket.off('data', onData);
          resolve();
        }
      };
      socket.on('data', onData);
    });
    await greeting;
    const client = new QmpClient(socket, socketPath);
    await client.execute('qmp_capabilities', undefined, timeoutMs);
    return client;
  }

  /** Runs a typed command. */
  command<K extends keyof QmpCommands>(name: K, timeoutMs?: number): Promise<QmpCommands[K]['result']> {
    return this.execute(name, undefined, timeoutMs) as Promise<QmpCommands[K]['result']>;
  }

  /** Runs any QMP command with arguments; the caller states the reply type. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closed) return Promise.reject(new QmpError(command, 'Disconnected', 'connection closed'));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError(command, 'Timeout', `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(JSON.stringify({ execute: command, arguments: args, id }) + '\n');
    });
  }

  /** Resolves with the first event named `name` that satisfies `match`. */
  waitForEvent(
    name: string,
    timeoutMs: number,
    match: (e: QmpEvent) => boolean = () => true,
  ): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('event', onEvent);
        reject(new QmpError(name, 'Timeout', `event not seen within ${timeoutMs} ms`));
      }, timeoutMs);
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || !match(e)) return;
        clearTimeout(timer);
        this.off('event', onEvent);
        resolve(e);
      };
      this.on('event', onEvent);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: { id?: string; return?: unknown; error?: { class: string; desc: string }; event?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      return; // QEMU only sends JSON; a torn line would be a QEMU bug, not ours to crash on
    }
    if (msg.event) {
      this.emit('event', msg as QmpEvent);
      return;
    }
    const pending = msg.id !== undefined ? this.pending.get(String(msg.id)) : undefined;
    if (!pending) return;
    this.pending.delete(String(msg.id));
    clearTimeout(pending.timer);
    if (msg.error) pending.reject(new QmpError(pending.command, msg.error.class, msg.error.desc));
    else pending.resolve(msg.return);
  }

  private failAll(err: QmpError): void {
    if (!this.closed) this.emit('close');
    this.closed = true;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new QmpError(p.command, err.errorClass, err.message));
    }
    this.pending.clear();
  }
}
