import type { Client } from '@temporalio/client';
import type { BackupPolicyInput, BackupPolicyChange, OverlapPolicy } from '../domain/backup';
import type { Config } from '../domain/config';
import type { Inventory } from '../inventory/db';
import type { ApiClient } from './api-client';
import {
  backupPolicies,
  policyDetail,
  policySummary,
  type PolicyDetail,
  type PolicySummary,
} from './backup-policies';

/** Backup policies as the CLI drives them, directly or through the API, answering alike. */
export interface PolicyControls {
  create(input: BackupPolicyInput): Promise<PolicyDetail>;
  list(): Promise<PolicySummary[]>;
  show(name: string): Promise<PolicyDetail>;
  update(name: string, change: BackupPolicyChange): Promise<PolicyDetail>;
  pause(name: string, note?: string): Promise<unknown>;
  resume(name: string, note?: string): Promise<unknown>;
  trigger(name: string, overlap?: OverlapPolicy): Promise<unknown>;
  delete(name: string): Promise<unknown>;
}

/** Straight to Temporal's Schedules and the inventory: an administrator on the controller. */
export function directPolicyControls(client: Client, inv: Inventory, config: Config): PolicyControls {
  const p = backupPolicies(client, inv);
  return {
    create: async (input) => policyDetail(config, await p.create(input)),
    list: async () => (await p.list()).map(policySummary),
    show: async (name) => policyDetail(config, await p.show(name)),
    update: async (name, change) => policyDetail(config, await p.update(name, change)),
    pause: (name, note) => p.pause(name, note),
    resume: (name, note) => p.resume(name, note),
    trigger: (name, overlap) => p.trigger(name, overlap),
    delete: (name) => p.delete(name),
  };
}

/** Through the API (server/backup-policy-routes.ts): the same requests, checked again there. */
export function apiPolicyControls(api: ApiClient): PolicyControls {
  const path = (name: string) => `/v1/backup-policies/${encodeURIComponent(name)}`;
  return {
    create: (input) => api.request('POST', '/v1/backup-policies', input),
    list: () => api.request('GET', '/v1/backup-policies'),
    show: (name) => api.request('GET', path(name)),
    update: (name, change) => api.request('PUT', path(name), change),
    pause: (name, note) => api.request('POST', `${path(name)}/pause`, { note }),
    resume: (name, note) => api.request('POST', `${path(name)}/resume`, { note }),
    trigger: (name, overlap) => api.request('POST', `${path(name)}/trigger`, { overlap }),
    delete: (name) => api.request('DELETE', path(name)),
  };
}
