import fs from 'node:fs';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { ValidationError, VirtflowError } from '../domain/errors';
import type { StartedOperation } from './vm-operations';

/** What the API answers a started operation with (202). */
interface Accepted {
  workflowId: string;
  runId: string;
  temporalUrl: string;
  progressUrl: string;
}

/** An operation started through the API: followed by its progress URL, not a Temporal handle. */
export type ApiOperation<R> = Omit<StartedOperation<R>, 'handle'>;

/**
 * The CLI's way to virtflow when it is logged in (`virtflow login`): HTTP with a bearer token,
 * so an operator's machine needs neither Temporal nor MongoDB. The API's refusals come back as
 * the same errors the direct mode throws, field and reason included.
 */
export class ApiClient {
  constructor(
    readonly url: string,
    private readonly token: string,
    /** How often a followed operation is polled. */
    private readonly pollMs = 1000,
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.exchange<T>(method, path, body)).answer;
  }

  /**
   * Sends a file as a request's body, streamed (an image upload): never read into memory whole.
   * The file must be a regular file here; the server checks everything else.
   */
  async upload<T>(path: string, file: string): Promise<T> {
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new ValidationError('file', `"${file}" is not a regular file`);
    const res = await fetch(new URL(path, this.url), {
      method: 'PUT',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/octet-stream' },
      body: Readable.toWeb(fs.createReadStream(file)) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    return this.answer<T>('PUT', path, res);
  }

  /** A response that is not JSON (a screenshot's PNG), as bytes; a refusal as `request` throws it. */
  async download(path: string): Promise<Buffer> {
    const res = await fetch(new URL(path, this.url), { headers: { authorization: `Bearer ${this.token}` } });
    if (!res.ok) await this.answer('GET', path, res);
    return Buffer.from(await res.arrayBuffer());
  }

  /** Every item of a paged list: its pages in turn, as each one's `Link: rel="next"` names the next. */
  async list<T>(path: string): Promise<T[]> {
    const items: T[] = [];
    for (let next: string | undefined = path; next;) {
      const page: { answer: T[]; res: Response } = await this.exchange<T[]>('GET', next);
      items.push(...page.answer);
      next = /<([^>]+)>;\s*rel="next"/.exec(page.res.headers.get('link') ?? '')?.[1];
    }
    return items;
  }

  private async exchange<T>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ answer: T; res: Response }> {
    const res = await fetch(new URL(path, this.url), {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    return { answer: await this.answer<T>(method, path, res), res };
  }

  /** A response's JSON, or its refusal as the error the direct mode would throw. */
  private async answer<T>(method: string, path: string, res: Response): Promise<T> {
    const text = await res.text();
    const answer = text ? JSON.parse(text) : undefined;
    if (res.ok) return answer as T;
    const { error, message, field } = (answer ?? {}) as { error?: string; message?: string; field?: string };
    if (error === 'ValidationError' && field)
      throw new ValidationError(field, (message ?? '').replace(`${field}: `, ''));
    throw new VirtflowError(error ?? `HTTP${res.status}`, message ?? `${method} ${path}: HTTP ${res.status}`);
  }

  /** Starts an operation (a 202 route) and returns a way to wait for its result. */
  async start<R>(method: string, path: string, body?: unknown): Promise<ApiOperation<R>> {
    const accepted = await this.request<Accepted>(method, path, body);
    return {
      workflowId: accepted.workflowId,
      runId: accepted.runId,
      url: accepted.temporalUrl,
      result: () => this.follow<R>(accepted),
    };
  }

  private async follow<R>(accepted: Accepted): Promise<R> {
    for (;;) {
      const op = await this.request<{
        runId: string;
        status: string;
        result?: R;
        failure?: { type?: string; message: string };
      }>('GET', accepted.progressUrl);
      // A later operation on the VM means this one ended; its own outcome is then unknown here.
      if (op.runId !== accepted.runId)
        throw new VirtflowError('OperationSuperseded', `${accepted.workflowId} ran another operation since`);
      if (op.status === 'COMPLETED') return op.result as R;
      if (op.status !== 'RUNNING')
        throw new VirtflowError(
          op.failure?.type ?? op.status,
          op.failure?.message ?? `the operation ${op.status.toLowerCase()}`,
        );
      await sleep(this.pollMs);
    }
  }
}
