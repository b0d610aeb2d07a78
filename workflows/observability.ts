import { defineQuery, setCurrentDetails, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import { searchAttributes } from '../domain/names';

export interface Progress {
  operation: string;
  phase: string;
  message: string;
  [key: string]: unknown;
}

/** Every workflow answers `progress` with where it is and what it is doing. */
export const progressQuery = defineQuery<Progress>('progress');

/**
 * Tracks an operation's phase for the operator: the `progress` query, the VfPhase search
 * attribute and the run's current details in the Temporal UI all say the same thing.
 */
export type Operation = ReturnType<typeof trackOperation>;

export function trackOperation(init: { operation: string; vm?: string; hosts?: string[]; cluster?: string }) {
  let progress: Progress = { operation: init.operation, phase: 'starting', message: 'starting' };
  setHandler(progressQuery, () => progress);
  upsertSearchAttributes([
    { key: searchAttributes.operation, value: init.operation },
    { key: searchAttributes.phase, value: 'starting' },
    ...(init.vm ? [{ key: searchAttributes.vm, value: init.vm }] : []),
    ...(init.hosts ? [{ key: searchAttributes.hosts, value: init.hosts }] : []),
    ...(init.cluster ? [{ key: searchAttributes.cluster, value: init.cluster }] : []),
  ]);
  return {
    phase(phase: string, message: string, extra: Record<string, unknown> = {}) {
      const changed = phase !== progress.phase;
      progress = { ...progress, ...extra, phase, message };
      if (changed) upsertSearchAttributes([{ key: searchAttributes.phase, value: phase }]);
      setCurrentDetails(`**${phase}**: ${message}`);
    },
    hosts(hosts: string[]) {
      upsertSearchAttributes([{ key: searchAttributes.hosts, value: hosts }]);
    },
    /** The networks the operation's VM has NICs on (VfNetworks): only VMs with NICs set it. */
    networks(networks: string[]) {
      if (networks.length) upsertSearchAttributes([{ key: searchAttributes.networks, value: networks }]);
    },
    get current(): Progress {
      return progress;
    },
  };
}
