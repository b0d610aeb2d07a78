import type { SetHaRequest } from '../domain/ha';
import type {
  AddNicRequest,
  CreateVmRequest,
  DeleteVmRequest,
  RemoveNicRequest,
  ResizeDiskRequest,
  StopVmRequest,
  VmRef,
} from '../domain/requests';
import type {
  addNic,
  createVm,
  deleteVm,
  removeNic,
  resizeDisk,
  setVmHa,
  startVm,
  stopVm,
} from '../workflows';
import type { ApiClient, ApiOperation } from './api-client';

type Result<W extends (...args: never[]) => unknown> = Awaited<ReturnType<W>>;

/** A VM's life cycle and disks as the CLI drives them, directly (vmOperations) or through the API. */
export interface VmLifecycle {
  create(req: CreateVmRequest): Promise<ApiOperation<Result<typeof createVm>>>;
  start(req: VmRef): Promise<ApiOperation<Result<typeof startVm>>>;
  stop(req: StopVmRequest): Promise<ApiOperation<Result<typeof stopVm>>>;
  delete(req: DeleteVmRequest): Promise<ApiOperation<Result<typeof deleteVm>>>;
  resizeDisk(req: ResizeDiskRequest): Promise<ApiOperation<Result<typeof resizeDisk>>>;
  addNic(req: AddNicRequest): Promise<ApiOperation<Result<typeof addNic>>>;
  removeNic(req: RemoveNicRequest): Promise<ApiOperation<Result<typeof removeNic>>>;
  setHa(req: SetHaRequest): Promise<ApiOperation<Result<typeof setVmHa>>>;
}

const vmPath = (vmId: string) => `/v1/vms/${encodeURIComponent(vmId)}`;

/** The life cycle through the API: the same requests, checked again by the server. */
export function apiVmOperations(api: ApiClient): VmLifecycle {
  return {
    create: (req) => api.start('POST', '/v1/vms', req),
    start: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/start`, rest),
    stop: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/stop`, rest),
    delete: ({ vmId, ...rest }) => api.start('DELETE', vmPath(vmId), rest),
    resizeDisk: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/resize-disk`, rest),
    addNic: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/nics`, rest),
    removeNic: ({ vmId, network }) =>
      api.start('DELETE', `${vmPath(vmId)}/nics/${encodeURIComponent(network)}`),
    setHa: ({ vmId, ...rest }) => api.start('POST', `${vmPath(vmId)}/ha`, rest),
  };
}
