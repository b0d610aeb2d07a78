import { z } from 'zod';
import { idSchema } from './ids';

/**
 * High availability (DESIGN.md §4): a VM with `ha.enabled` is restarted elsewhere when its host
 * is lost, and on its own host when its guest dies. Higher priority restarts first, as with
 * vSphere HA's restart priority; equal priorities restart together.
 */
export const HA_PRIORITY_MAX = 1000;

export const setHaRequestSchema = z.object({
  vmId: idSchema,
  enabled: z.boolean().default(true),
  priority: z
    .number()
    .int('must be a whole number')
    .min(0, 'must be 0 or more')
    .max(HA_PRIORITY_MAX, `must be ${HA_PRIORITY_MAX} or less`)
    .default(0),
});
export type SetHaRequest = z.input<typeof setHaRequestSchema>;
export type HaSettings = Omit<z.output<typeof setHaRequestSchema>, 'vmId'>;

export const fenceRequestSchema = z.object({
  hostId: idSchema,
  /** An operator's fence: act although the agent still answers (its guests will be killed). */
  force: z.boolean().default(false),
});
export type FenceRequest = z.input<typeof fenceRequestSchema>;

/**
 * The order HA restarts VMs in: waves of equal priority, highest first. A wave starts when the
 * one before it has finished, so a database is up before the application that needs it.
 */
export function restartWaves<T extends { vmId: string; priority: number }>(vms: T[]): T[][] {
  const byPriority = new Map<number, T[]>();
  for (const vm of vms)
    (byPriority.get(vm.priority) ?? byPriority.set(vm.priority, []).get(vm.priority)!).push(vm);
  return [...byPriority.entries()]
    .sort(([a], [b]) => b - a)
    .map(([, wave]) => wave.sort((a, b) => a.vmId.localeCompare(b.vmId)));
}
