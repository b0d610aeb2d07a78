import { z } from 'zod';
import { VirtflowError } from './errors';

/**
 * A project's quota: how many VMs, vCPUs and MiB of memory its VMs may hold in all (every VM
 * counts, running or not, as its capacity on a host does). An absent limit is no limit.
 */
export const quotaSchema = z.strictObject({
  vms: z.number().int().min(0).max(1_000_000).optional(),
  vcpus: z.number().int().min(0).max(10_000_000).optional(),
  memoryMiB: z
    .number()
    .int()
    .min(0)
    .max(1024 ** 3)
    .optional(),
});
export type Quota = z.infer<typeof quotaSchema>;

export interface QuotaUsage {
  vms: number;
  vcpus: number;
  memoryMiB: number;
}

/** What a new VM would take beyond the quota, one reason per limit; empty when it fits. */
export function quotaShortfall(quota: Quota, used: QuotaUsage, add: Omit<QuotaUsage, 'vms'>): string[] {
  const short: string[] = [];
  if (quota.vms !== undefined && used.vms + 1 > quota.vms)
    short.push(`vms: ${used.vms} of ${quota.vms} already used`);
  if (quota.vcpus !== undefined && used.vcpus + add.vcpus > quota.vcpus)
    short.push(`vcpus: needs ${add.vcpus}, ${quota.vcpus - used.vcpus} of ${quota.vcpus} left`);
  if (quota.memoryMiB !== undefined && used.memoryMiB + add.memoryMiB > quota.memoryMiB)
    short.push(
      `memoryMiB: needs ${add.memoryMiB}, ${quota.memoryMiB - used.memoryMiB} of ${quota.memoryMiB} left`,
    );
  return short;
}

/** A new VM would take its project past its quota. */
export class QuotaExceededError extends VirtflowError {
  constructor(project: string, vmId: string, short: string[]) {
    super('QuotaExceededError', `project ${project} has no room for vm ${vmId}: ${short.join('; ')}`);
  }
}
