import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../domain/config';
import { InvalidStateError } from '../domain/errors';
import { openInventory, type Inventory } from '../inventory/db';
import { clientActingAs, localActor } from './actor';
import { ApiClient } from './api-client';
import { readCredentials, type Credentials } from './credentials';
import { connectClient } from './temporal';

/**
 * What a CLI command talks to. Logged in (`virtflow login`, or VIRTFLOW_API_URL and
 * VIRTFLOW_API_TOKEN), the CLI goes through the API with the operator's token; otherwise, or
 * with `--direct`, it talks to MongoDB and Temporal itself, as an administrator on the
 * controller does. Connections open lazily, so `virtflow host list` does not need Temporal.
 */
export class CliContext {
  readonly config: Config = loadConfig();
  /** Who the direct mode acts as: the machine's user, on the whole fleet. */
  readonly actor = localActor();
  /** Set by `--direct` before a command runs. */
  direct = false;
  private readonly credentials?: Credentials;
  private inv?: Inventory;
  private temporal?: Client;

  constructor(opts: { credentials?: Credentials | null } = {}) {
    this.credentials = opts.credentials === null ? undefined : (opts.credentials ?? readCredentials());
  }

  /** The API, when the CLI is logged in and not told `--direct`. */
  get api(): ApiClient | undefined {
    return this.credentials && !this.direct
      ? new ApiClient(this.credentials.url, this.credentials.token)
      : undefined;
  }

  /** Refuses a command the API does not serve yet while logged in: no silent fallback to direct access. */
  private directOnly(): void {
    if (this.api)
      throw new InvalidStateError(
        'this command is not served by the API yet: run it with --direct where MongoDB and Temporal are reachable',
      );
  }

  /**
   * What a read command shows, the same either way: the API's answer to `GET path` when logged
   * in, else `direct` on the inventory.
   */
  async read<T>(path: string, direct: (inv: Inventory) => Promise<T>): Promise<T> {
    const api = this.api;
    return api ? api.request<T>('GET', path) : direct(await this.inventory());
  }

  async inventory(): Promise<Inventory> {
    this.directOnly();
    this.inv ??= await openInventory(this.config);
    return this.inv;
  }

  async client(): Promise<Client> {
    this.directOnly();
    this.temporal ??= clientActingAs(await connectClient(this.config), this.actor);
    return this.temporal;
  }

  async close(): Promise<void> {
    await this.inv?.close();
    await this.temporal?.connection.close();
  }
}
