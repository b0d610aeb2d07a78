import type { FenceRequest } from '../domain/ha';
import type { EnterMaintenanceRequest, ExitMaintenanceRequest } from '../domain/maintenance';
import type { PatchHostRequest } from '../domain/patch';
import type { enterMaintenance, exitMaintenance, haRestart, patchHost } from '../workflows';
import type { ApiClient, ApiOperation } from './api-client';

type Result<W extends (...args: never[]) => unknown> = Awaited<ReturnType<W>>;

/** Host operations as the CLI drives them, directly (hostOperations) or through the API. */
export interface HostControls {
  enterMaintenance(req: EnterMaintenanceRequest): Promise<ApiOperation<Result<typeof enterMaintenance>>>;
  exitMaintenance(req: ExitMaintenanceRequest): Promise<ApiOperation<Result<typeof exitMaintenance>>>;
  patch(req: PatchHostRequest): Promise<ApiOperation<Result<typeof patchHost>>>;
  fence(req: FenceRequest): Promise<ApiOperation<Result<typeof haRestart>>>;
  resolveBlocked(hostId: string, action: 'retry' | 'stop-them'): Promise<string>;
}

export const hostPath = (hostId: string) => `/v1/hosts/${encodeURIComponent(hostId)}`;

/** Through the API (server/host-routes.ts): the same requests, checked again by the server. */
export function apiHostOperations(api: ApiClient): HostControls {
  return {
    enterMaintenance: ({ hostId, ...rest }) =>
      api.start('POST', `${hostPath(hostId)}/maintenance/enter`, rest),
    exitMaintenance: ({ hostId, ...rest }) => api.start('POST', `${hostPath(hostId)}/maintenance/exit`, rest),
    patch: ({ hostId, ...rest }) => api.start('POST', `${hostPath(hostId)}/patch`, rest),
    fence: ({ hostId, ...rest }) => api.start('POST', `${hostPath(hostId)}/fence`, rest),
    resolveBlocked: async (hostId, action) =>
      (
        await api.request<{ message: string }>('POST', `${hostPath(hostId)}/maintenance/resolve`, {
          action,
        })
      ).message,
  };
}
