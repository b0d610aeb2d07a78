import { VirtflowError } from '../domain/errors';
import type { RolloutRequest } from '../domain/rollout';
import type { RolloutProgress } from '../workflows/rollout-control';
import type { ApiClient, ApiOperation } from './api-client';

/** Rolling patches as the CLI drives them, directly (rolloutOperations) or through the API. */
export interface RolloutControls {
  start(req: RolloutRequest): Promise<Omit<ApiOperation<RolloutProgress>, 'runId'>>;
  status(name: string): Promise<RolloutProgress>;
  pause(name: string): Promise<string>;
  resume(name: string): Promise<string>;
  abort(name: string): Promise<string>;
  skip(name: string, hostId: string): Promise<string>;
  retry(name: string, hostId: string): Promise<string>;
}

/** The controls through the API: the same requests, refused by the server with the same reasons. */
export function apiRolloutOperations(api: ApiClient): RolloutControls {
  const path = (name: string) => `/v1/rollouts/${encodeURIComponent(name)}`;
  const control = async (url: string) => (await api.request<{ message: string }>('POST', url, {})).message;
  return {
    start: (req) => api.start('POST', '/v1/rollouts', req),
    async status(name) {
      const r = await api.request<{ status: string; progress?: RolloutProgress }>('GET', path(name));
      if (!r.progress) throw new VirtflowError('RolloutEnded', `rollout ${name} ${r.status.toLowerCase()}`);
      return r.progress;
    },
    pause: (name) => control(`${path(name)}/pause`),
    resume: (name) => control(`${path(name)}/resume`),
    abort: (name) => control(`${path(name)}/abort`),
    skip: (name, hostId) => control(`${path(name)}/hosts/${encodeURIComponent(hostId)}/skip`),
    retry: (name, hostId) => control(`${path(name)}/hosts/${encodeURIComponent(hostId)}/retry`),
  };
}
