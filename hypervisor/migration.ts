import type { MigrationPolicy, MigrationStats } from '../domain/migration';
import type { QmpClient } from './qmp';

const MiB = 1024 * 1024;

/** Capabilities must be set on both ends before the stream starts (post-copy especially). */
export async function setMigrationCapabilities(
  qmp: QmpClient,
  policy: MigrationPolicy,
  side: 'source' | 'target',
) {
  const capabilities = [{ capability: 'postcopy-ram', state: policy.postCopy }];
  if (side === 'source') capabilities.push({ capability: 'auto-converge', state: policy.autoConverge });
  await qmp.execute('migrate-set-capabilities', { capabilities });
}

export async function setMigrationParameters(
  qmp: QmpClient,
  params: { maxBandwidthMiBps?: number; downtimeLimitMs?: number },
): Promise<void> {
  const args: Record<string, number> = {};
  if (params.maxBandwidthMiBps !== undefined) args['max-bandwidth'] = params.maxBandwidthMiBps * MiB;
  if (params.downtimeLimitMs !== undefined) args['downtime-limit'] = params.downtimeLimitMs;
  await qmp.execute('migrate-set-parameters', args);
}

/** What QEMU reports of the migration, in virtflow's words. */
export async function readMigration(qmp: QmpClient): Promise<MigrationStats> {
  const [info, params] = await Promise.all([
    qmp.command('query-migrate'),
    qmp.execute<{ 'max-bandwidth': number; 'downtime-limit': number }>('query-migrate-parameters'),
  ]);
  const ram = info.ram;
  return {
    status: info.status ?? 'none',
    transferredBytes: ram?.transferred ?? 0,
    remainingBytes: ram?.remaining ?? 0,
    totalBytes: ram?.total ?? 0,
    dirtyPagesRate: ram?.['dirty-pages-rate'] ?? 0,
    iteration: ram?.['dirty-sync-count'] ?? 0,
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    mbps: ram?.mbps ?? 0,
    elapsedMs: info['total-time'] ?? 0,
    downtimeMs: info.downtime ?? null,
    downtimeLimitMs: params['downtime-limit'],
    bandwidthMiBps: Math.round(params['max-bandwidth'] / MiB),
  };
}

/** QEMU's migration states that mean the stream is still going. */
export const migrationInFlight = new Set([
  'setup',
  'active',
  'postcopy-active',
  'postcopy-paused',
  'postcopy-recover',
  'pre-switchover',
  'device',
  'cancelling',
  'wait-unplug',
]);
