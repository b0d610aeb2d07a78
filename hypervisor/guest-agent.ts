import net from 'node:net';
import type { GuestInfo } from '../domain/guest';

/** A guest agent that did not answer, answered with an error, or went away. */
export class GuestAgentError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(`guest agent ${command}: ${message}`);
    this.name = 'GuestAgentError';
  }
}

/** The replies virtflow reads, as the QEMU guest agent protocol defines them. */
export interface GuestAgentCommands {
  'guest-ping': Record<string, never>;
  'guest-info': { version: string; supported_commands: { name: string; enabled: boolean }[] };
  'guest-get-host-name': { 'host-name': string };
  'guest-get-osinfo': {
    id?: string;
    name?: string;
    'pretty-name'?: string;
    'version-id'?: string;
    'kernel-release'?: string;
  };
  'guest-network-get-interfaces': {
    name: string;
    'hardware-address'?: string;
    'ip-addresses'?: { 'ip-address-type': 'ipv4' | 'ipv6'; 'ip-address': string; prefix: number }[];
  }[];
  'guest-file-open': number;
  'guest-file-read': { count: number; 'buf-b64': string; eof: boolean };
  'guest-file-close': Record<string, never>;
  'guest-fsfreeze-freeze': number;
  'guest-fsfreeze-thaw': number;
  'guest-fsfreeze-status': 'thawed' | 'frozen';
  'guest-exec': { pid: number };
  'guest-exec-status': { exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string };
}

const SYNC_DELIMITER = 0xff;
const SYNC_RESEND_MS = 250;

/**
 * One conversation with a guest's agent over its virtio-serial chardev socket. The channel
 * has no request ids and may hold a stale reply from an earlier client, so every conversation
 * opens with `guest-sync-delimited` and a fresh random id: the agent answers it after a 0xFF
 * byte, and everything before that reply is discarded. A reply to the sync therefore proves
 * the agent runs now, not that it ran once.
 */
export class GuestAgentClient {
  private buffer = Buffer.alloc(0);
  private waiter?: () => void;
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, d]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  /** Connects and synchronises; fails if the agent does not answer within `timeoutMs`. */
  static async connect(socketPath: string, timeoutMs: number): Promise<GuestAgentClient> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.createConnection(socketPath);
      s.once('connect', () => resolve(s));
      s.once('error', (err) => reject(new GuestAgentError('connect', err.message)));
    });
    const client = new GuestAgentClient(socket);
    try {
      await client.sync(timeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  private async sync(timeoutMs: number): Promise<void> {
    const id = Math.floor(Math.random() * 2 ** 31);
    // A leading 0xFF makes the agent drop any half-written request before the sync.
    const sync = Buffer.concat([Buffer.from([SYNC_DELIMITER]), this.request('guest-sync-delimited', { id })]);
    this.socket.write(sync);
    // A sync written while the guest reopens its port (after the previous client left) can be
    // lost: repeat it until one is answered, as the protocol advises. Same id, so any answer counts.
    const resend = setInterval(() => this.socket.write(sync), SYNC_RESEND_MS);
    try {
      await this.awaitSync(id, Date.now() + timeoutMs);
    } finally {
      clearInterval(resend);
    }
  }

  private async awaitSync(id: number, deadline: number): Promise<void> {
    for (;;) {
      const mark = this.buffer.indexOf(SYNC_DELIMITER);
      if (mark >= 0) {
        this.buffer = this.buffer.subarray(mark + 1);
        const line = await this.readLine('guest-sync-delimited', deadline);
        const reply = JSON.parse(line) as { return?: number };
        if (reply.return === id) return;
        continue; // a reply to an earlier client's sync
      }
      this.buffer = Buffer.alloc(0);
      await this.waitForData('guest-sync-delimited', deadline);
    }
  }

  /** Runs one command and returns its reply. */
  async execute<K extends keyof GuestAgentCommands>(
    command: K,
    args?: Record<string, unknown>,
    timeoutMs = 10_000,
  ): Promise<GuestAgentCommands[K]> {
    this.socket.write(this.request(command, args));
    const line = await this.readLine(command, Date.now() + timeoutMs);
    const reply = JSON.parse(line) as {
      return?: GuestAgentCommands[K];
      error?: { class: string; desc: string };
    };
    if (reply.error) throw new GuestAgentError(command, `${reply.error.class}: ${reply.error.desc}`);
    return reply.return as GuestAgentCommands[K];
  }

  /**
   * Asks the guest to power off. A guest agent sends no reply to a shutdown that works, so
   * this only writes the request; the caller watches the QEMU process end.
   */
  requestShutdown(mode: 'powerdown' | 'halt' = 'powerdown'): void {
    this.socket.write(this.request('guest-shutdown', { mode }));
  }

  close(): void {
    this.closed = true;
    this.socket.destroy();
  }

  private request(command: string, args?: Record<string, unknown>): Buffer {
    return Buffer.from(
      JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n',
    );
  }

  private async readLine(command: string, deadline: number): Promise<string> {
    for (;;) {
      const end = this.buffer.indexOf(0x0a);
      if (end >= 0) {
        const raw = this.buffer.subarray(0, end);
        this.buffer = this.buffer.subarray(end + 1);
        // A late answer to a repeated sync (0xFF, then its reply): not this command's.
        if (raw.includes(SYNC_DELIMITER)) continue;
        const line = raw.toString('utf8').trim();
        if (line) return line;
        continue;
      }
      await this.waitForData(command, deadline);
    }
  }

  private waitForData(command: string, deadline: number): Promise<void> {
    if (this.closed) return Promise.reject(new GuestAgentError(command, 'the channel closed'));
    const left = deadline - Date.now();
    if (left <= 0) return Promise.reject(new GuestAgentError(command, 'no answer in time'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new GuestAgentError(command, 'no answer in time'));
      }, left);
      this.waiter = () => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve();
      };
    });
  }
}

/** Opens a conversation, runs `body`, and always closes it (the channel takes one client at a time). */
export async function withGuestAgent<T>(
  socketPath: string,
  timeoutMs: number,
  body: (agent: GuestAgentClient) => Promise<T>,
): Promise<T> {
  const agent = await GuestAgentClient.connect(socketPath, timeoutMs);
  try {
    return await body(agent);
  } finally {
    agent.close();
  }
}

/** Every address of every interface, with the interface's name and MAC. */
function addressesOf(nics: GuestAgentCommands['guest-network-get-interfaces']): GuestInfo['addresses'] {
  return nics.flatMap((nic) =>
    (nic['ip-addresses'] ?? []).map((a) => ({
      interface: nic.name,
      mac: nic['hardware-address'],
      address: a['ip-address'],
      prefix: a.prefix,
    })),
  );
}

/** The guest's addresses alone (the reconciler's question): one command, not `readGuestInfo`'s four. */
export function readGuestAddresses(socketPath: string, timeoutMs = 5000): Promise<GuestInfo['addresses']> {
  return withGuestAgent(socketPath, timeoutMs, async (agent) =>
    addressesOf(await agent.execute('guest-network-get-interfaces', undefined, timeoutMs)),
  );
}

/** The guest's network interfaces by name and MAC, with or without addresses. */
export function guestInterfaces(
  socketPath: string,
  timeoutMs = 5000,
): Promise<{ name: string; mac?: string }[]> {
  return withGuestAgent(socketPath, timeoutMs, async (agent) =>
    (await agent.execute('guest-network-get-interfaces', undefined, timeoutMs)).map((nic) => ({
      name: nic.name,
      mac: nic['hardware-address'],
    })),
  );
}

/** Hostname, OS and addresses, in one conversation. */
export function readGuestInfo(socketPath: string, timeoutMs = 5000): Promise<GuestInfo> {
  return withGuestAgent(socketPath, timeoutMs, async (agent) => {
    const info = await agent.execute('guest-info', undefined, timeoutMs);
    const host = await agent.execute('guest-get-host-name', undefined, timeoutMs);
    const os = await agent.execute('guest-get-osinfo', undefined, timeoutMs);
    const nics = await agent.execute('guest-network-get-interfaces', undefined, timeoutMs);
    return {
      hostname: host['host-name'],
      os: os['pretty-name'] ?? os.name ?? os.id ?? 'unknown',
      kernel: os['kernel-release'],
      agentVersion: info.version,
      addresses: addressesOf(nics),
    };
  });
}

/**
 * Runs `body` (taking a backup's point in time) with the guest's file systems frozen by its
 * agent, and always thaws afterwards, even when the freeze itself timed out (the guest may
 * have frozen regardless). Each agent call has a hard timeout, so a wedged agent costs
 * seconds, never a guest left frozen. Without a confirmed freeze the result is only
 * crash-consistent, and says so.
 */
export async function withFrozenFilesystems<T>(
  socketPath: string,
  body: () => Promise<T>,
  timeoutMs = 10_000,
): Promise<{ result: T; consistency: 'application-consistent' | 'crash-consistent' }> {
  let frozen = false;
  let attempted = false;
  try {
    await withGuestAgent(socketPath, timeoutMs, async (agent) => {
      attempted = true;
      await agent.execute('guest-fsfreeze-freeze', undefined, timeoutMs);
      frozen = true;
    });
  } catch {
    // No agent, or it did not freeze in time: a crash-consistent backup, thawed below if asked.
  }
  try {
    const result = await body();
    return { result, consistency: frozen ? 'application-consistent' : 'crash-consistent' };
  } finally {
    if (attempted) await thawWithRetries(socketPath, timeoutMs);
  }
}

async function thawWithRetries(socketPath: string, timeoutMs: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await withGuestAgent(socketPath, timeoutMs, (agent) =>
        agent.execute('guest-fsfreeze-thaw', undefined, timeoutMs),
      );
      return;
    } catch (err) {
      if (attempt >= 3)
        throw new GuestAgentError(
          'guest-fsfreeze-thaw',
          `the guest may still be frozen: ${(err as Error).message}`,
        );
    }
  }
}

/** A file's content inside the guest, read through its agent (at most `maxBytes`). */
export function readGuestFile(socketPath: string, file: string, maxBytes = 1024 * 1024): Promise<string> {
  return withGuestAgent(socketPath, 5000, async (agent) => {
    const handle = await agent.execute('guest-file-open', { path: file, mode: 'r' });
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const r = await agent.execute('guest-file-read', { handle, count: 65536 });
        chunks.push(Buffer.from(r['buf-b64'], 'base64'));
        total += r.count;
        if (r.eof || r.count === 0 || total >= maxBytes) break;
      }
      return Buffer.concat(chunks).toString('utf8');
    } finally {
      await agent.execute('guest-file-close', { handle });
    }
  });
}

/**
 * Runs a command inside the guest through its agent (`guest-exec`, then `guest-exec-status`
 * until it exits) and returns its exit code and output. Fails when the agent does not offer it.
 */
export function guestExec(
  socketPath: string,
  command: string,
  args: string[],
  timeoutMs = 10_000,
): Promise<{ exitCode: number; output: string }> {
  return withGuestAgent(socketPath, timeoutMs, async (agent) => {
    const { pid } = await agent.execute('guest-exec', { path: command, arg: args, 'capture-output': true });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await agent.execute('guest-exec-status', { pid });
      if (s.exited) {
        const decode = (b64?: string) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
        return { exitCode: s.exitcode ?? -1, output: decode(s['out-data']) + decode(s['err-data']) };
      }
      if (Date.now() > deadline)
        throw new GuestAgentError('guest-exec', `${command} did not exit within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}
