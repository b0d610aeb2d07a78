import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** The controller worker's task queue: every workflow and the inventory activities. */
export const CONTROLLER_TASK_QUEUE = 'virtflow-controller';

/** Hosts of the simulated fleet are named `sim-…`; no real agent may take such a name. */
export const SIM_HOST_PREFIX = 'sim-';

/** One simulated agent serves every simulated host, on this shared queue (DESIGN.md §4). */
export const SIM_TASK_QUEUE = 'host/sim';

export function isSimHost(hostId: string): boolean {
  return hostId.startsWith(SIM_HOST_PREFIX);
}

/**
 * A dry-run's twin hosts are `sim-t<6 hex>-…`: that dry-run's own simulated agent serves them
 * on `host/sim-t<6 hex>`, apart from any fleet `virtflow sim up` serves.
 */
const TWIN_HOST = /^sim-(t[0-9a-f]{6})-/;

export function twinHostPrefix(tag: string): string {
  return `${SIM_HOST_PREFIX}t${tag}-`;
}

/** Each host agent polls its own queue, so an activity scheduled there runs on that host. */
export function hostTaskQueue(hostId: string): string {
  const twin = TWIN_HOST.exec(hostId);
  if (twin) return `host/sim-${twin[1]}`;
  return isSimHost(hostId) ? SIM_TASK_QUEUE : `host/${hostId}`;
}

/** Workflow ids are resource-scoped so Temporal itself allows one operation per resource. */
export const workflowIds = {
  vm: (vmId: string) => `vm/${vmId}`,
  host: (hostId: string) => `host/${hostId}`,
  rollout: (name: string) => `rollout/${name}`,
};

/** The custom search attributes every workflow sets (DESIGN.md §6). */
export const searchAttributes = {
  vm: defineSearchAttributeKey('VfVm', SearchAttributeType.KEYWORD),
  hosts: defineSearchAttributeKey('VfHosts', SearchAttributeType.KEYWORD_LIST),
  operation: defineSearchAttributeKey('VfOperation', SearchAttributeType.KEYWORD),
  cluster: defineSearchAttributeKey('VfCluster', SearchAttributeType.KEYWORD),
  phase: defineSearchAttributeKey('VfPhase', SearchAttributeType.KEYWORD),
  /** The networks of the VM an operation is about (VMs with NICs only). */
  networks: defineSearchAttributeKey('VfNetworks', SearchAttributeType.KEYWORD_LIST),
  /** Who started the operation (`token:<name>` through the API, `local:<user>` from the CLI). */
  actor: defineSearchAttributeKey('VfActor', SearchAttributeType.KEYWORD),
};

export const allSearchAttributes = Object.values(searchAttributes);

/** `--search-attribute` flags for `temporal server start-dev`. */
export function devServerSearchAttributeFlags(): string[] {
  const temporalType: Record<string, string> = {
    [SearchAttributeType.KEYWORD]: 'Keyword',
    [SearchAttributeType.KEYWORD_LIST]: 'KeywordList',
  };
  return allSearchAttributes.flatMap((key) => [
    '--search-attribute',
    `${key.name}=${temporalType[key.type]}`,
  ]);
}

/**
 * The VM a datastore disk belongs to, from its file name (`<vm>.qcow2`, `<vm>.data<i>.qcow2`),
 * or undefined for a name virtflow did not give: the reconciler finds disks nobody owns by it.
 */
export function vmIdOfDiskName(name: string): string | undefined {
  return /^([a-z0-9-]+)(\.data\d+)?\.qcow2$/.exec(name)?.[1];
}
