import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../domain/config';
import { openInventory, type Inventory } from '../inventory/db';
import { clientActingAs, localActor } from './actor';
import { connectClient } from './temporal';

/**
 * What a CLI command talks to, opened lazily so `virtflow host list` does not need Temporal
 * and `virtflow vm migrate` does not wait for MongoDB it will not use.
 */
export class CliContext {
  readonly config: Config = loadConfig();
  private inv?: Inventory;
  private temporal?: Client;
  /** Who the CLI's direct mode acts as: the machine's user, on the whole fleet. */
  readonly actor = localActor();

  async inventory(): Promise<Inventory> {
    this.inv ??= await openInventory(this.config);
    return this.inv;
  }

  async client(): Promise<Client> {
    this.temporal ??= clientActingAs(await connectClient(this.config), this.actor);
    return this.temporal;
  }

  async close(): Promise<void> {
    await this.inv?.close();
    await this.temporal?.connection.close();
  }
}
