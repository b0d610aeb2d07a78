import { MongoClient, type Collection, type Db } from 'mongodb';
import type { Config } from '../domain/config';
import type { ApiTokenDoc } from './api-tokens';
import type { ProjectQuotaDoc, QuotaClaimDoc } from './quotas';
import { profileCommands, profilingEnabled } from './db-profile';
import type {
  BackupDoc,
  BackupPolicyDoc,
  DriftDoc,
  EventDoc,
  HostDoc,
  ImageDoc,
  LeaseDoc,
  MetricsDoc,
  NetworkDoc,
  NicClaimDoc,
  ReservationDoc,
  VmDoc,
  VmWriteDoc,
} from './schemas';

/**
 * Batch size for queries that read a whole collection: FerretDB otherwise answers in small
 * batches, and reading 5,000 VMs took some twenty round trips of up to 150 ms each under load.
 */
export const SCAN_BATCH = 10_000;

export interface Inventory {
  db: Db;
  hosts: Collection<HostDoc>;
  vms: Collection<VmDoc>;
  /** Claims of VM revisions: who writes revision n+1 of a VM (inventory/vms.ts). */
  vmWrites: Collection<VmWriteDoc>;
  images: Collection<ImageDoc>;
  reservations: Collection<ReservationDoc>;
  leases: Collection<LeaseDoc>;
  backups: Collection<BackupDoc>;
  backupPolicies: Collection<BackupPolicyDoc>;
  events: Collection<EventDoc>;
  metrics: Collection<MetricsDoc>;
  drift: Collection<DriftDoc>;
  networks: Collection<NetworkDoc>;
  /** Addresses and MACs held by VM NICs, one document each (inventory/networks.ts). */
  nicClaims: Collection<NicClaimDoc>;
  /** API tokens, by id, with their secrets' hashes (inventory/api-tokens.ts). */
  apiTokens: Collection<ApiTokenDoc>;
  /** Each project's quota, by project name, and the claims that arbitrate it (inventory/quotas.ts). */
  projectQuotas: Collection<ProjectQuotaDoc>;
  quotaClaims: Collection<QuotaClaimDoc>;
  close(): Promise<void>;
}

/** Opens the inventory database; the one place a MongoDB client is built. */
export async function openInventory(config: Config): Promise<Inventory> {
  // FerretDB and a single mongod both want a direct connection; a replica set URI may override.
  const client = new MongoClient(config.mongo.uri, {
    serverSelectionTimeoutMS: 10_000,
    directConnection: !config.mongo.uri.includes('replicaSet='),
    // Optional fields left undefined are absent, not stored as null (validated specs round-trip).
    ignoreUndefined: true,
    maxPoolSize: config.mongo.poolSize,
    monitorCommands: profilingEnabled(),
  });
  if (profilingEnabled()) profileCommands(client);
  try {
    await client.connect();
  } catch (err) {
    throw new Error(
      `cannot reach MongoDB at ${config.mongo.uri} (${(err as Error).message}); start the local stack with \`npm start\` or set MONGODB_URI`,
      { cause: err },
    );
  }
  const db = client.db(config.mongo.dbName);
  return {
    db,
    hosts: db.collection<HostDoc>('hosts'),
    vms: db.collection<VmDoc>('vms'),
    vmWrites: db.collection<VmWriteDoc>('vmWrites'),
    images: db.collection<ImageDoc>('images'),
    reservations: db.collection<ReservationDoc>('reservations'),
    leases: db.collection<LeaseDoc>('leases'),
    backups: db.collection<BackupDoc>('backups'),
    backupPolicies: db.collection<BackupPolicyDoc>('backupPolicies'),
    events: db.collection<EventDoc>('events'),
    metrics: db.collection<MetricsDoc>('metrics'),
    drift: db.collection<DriftDoc>('drift'),
    networks: db.collection<NetworkDoc>('networks'),
    nicClaims: db.collection<NicClaimDoc>('nicClaims'),
    apiTokens: db.collection<ApiTokenDoc>('apiTokens'),
    projectQuotas: db.collection<ProjectQuotaDoc>('projectQuotas'),
    quotaClaims: db.collection<QuotaClaimDoc>('quotaClaims'),
    close: () => client.close(),
  };
}

/**
 * Opens the inventory for a long-running process (controller, host agent, API server) and makes
 * sure its indexes exist, waiting out a database that is briefly away: a process started while
 * PostgreSQL behind FerretDB restarts retries every 2 s for `waitMs`, instead of exiting at once
 * and leaving, say, one controller fewer.
 */
export async function openInventoryWhenReady(
  config: Config,
  onRetry: (err: Error) => void,
  waitMs = 5 * 60_000,
): Promise<Inventory> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let inv: Inventory | undefined;
    try {
      inv = await openInventory(config);
      await ensureIndexes(inv);
      return inv;
    } catch (err) {
      await inv?.close().catch(() => undefined);
      if (Date.now() > deadline) throw err;
      onRetry(err as Error);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** Creates the indexes queries rely on. Idempotent: every process may call it at start. */
export async function ensureIndexes(inv: Inventory): Promise<void> {
  await inv.vms.createIndex({ host: 1 });
  await inv.vms.createIndex({ state: 1 });
  await inv.vmWrites.createIndex({ vmId: 1, revision: 1 });
  await inv.images.createIndex({ sha256: 1 });
  await inv.reservations.createIndex({ hostId: 1, state: 1 });
  await inv.reservations.createIndex({ hostId: 1, seq: -1 });
  await inv.reservations.createIndex({ owner: 1 });
  await inv.leases.createIndex({ resource: 1 }, { unique: true });
  await inv.backups.createIndex({ vmId: 1, state: 1, finishedAt: -1 });
  await inv.events.createIndex({ subject: 1, at: -1 });
  await inv.events.createIndex({ workflowId: 1 });
  await inv.metrics.createIndex({ hostId: 1, at: -1 });
}
