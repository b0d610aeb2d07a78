import { InvalidStateError } from '../domain/errors';
import type { ForceCompleteRequest, MigrationRequest } from '../domain/migration';
import type { MigrationProgress, MigrationResult } from '../workflows/migration-control';
import type { ApiClient, ApiOperation } from './api-client';

/** A live migration and its controls as the CLI drives them, directly (vmOperations) or through the API. */
export interface MigrationControls {
  migrate(req: MigrationRequest): Promise<ApiOperation<MigrationResult>>;
  /** Where the VM's running operation is; refused when none runs. */
  progress(vmId: string): Promise<MigrationProgress>;
  abortMigration(vmId: string, reason?: string): Promise<string>;
  forceCompleteMigration(vmId: string, req?: ForceCompleteRequest): Promise<string>;
  setMaxBandwidth(vmId: string, maxBandwidthMiBps: number): Promise<string>;
}

/** Through the API (server/vm-routes.ts): the same requests, refused by the server with the same reasons. */
export function apiMigrationOperations(api: ApiClient): MigrationControls {
  const vmPath = (vmId: string) => `/v1/vms/${encodeURIComponent(vmId)}`;
  const control = async (vmId: string, verb: string, body: unknown) =>
    (await api.request<{ outcome: string }>('POST', `${vmPath(vmId)}/migration/${verb}`, body)).outcome;
  return {
    migrate: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/migrate`, rest),
    async progress(vmId) {
      const op = await api.request<{ status: string; progress?: MigrationProgress }>(
        'GET',
        `${vmPath(vmId)}/operation`,
      );
      if (!op.progress)
        throw new InvalidStateError(
          `vm ${vmId} runs no operation (its last one is ${op.status.toLowerCase()})`,
        );
      return op.progress;
    },
    abortMigration: (vmId, reason) => control(vmId, 'abort', { reason }),
    forceCompleteMigration: (vmId, req = {}) => control(vmId, 'force-complete', req),
    setMaxBandwidth: (vmId, maxBandwidthMiBps) => control(vmId, 'bandwidth', { maxBandwidthMiBps }),
  };
}
