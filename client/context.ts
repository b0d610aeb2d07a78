import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../domain/config';
import { openInventory, type Inventory } from '../inventory/db';
import { connectClient } from './temporal';

/**
 * What a CLI command talks to, opened lazily so `virtflow host list` does not need Temporal
 * and `virtflow vm migrate` does not wait for MongoDB it will not use.
 */
export class CliContext {
  readonly config: Config = loadConfig();
  private inv?: Inventory;
  private temporal?: Client;

  async inventory(): Promise<Inventory> {
    this.inv ??= await openInventory(this.config);
    return this.inv;
  }

  async client(): Promise<Client> {
    this.temporal ??= await connectClient(this.config);
    return this.temporal;
  }

  async close(): Promise<void> {
    await this.inv?.close();
    await this.temporal?.connection.close();
  }
}
