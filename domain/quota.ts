import { z } from 'zod';
import { formatBytes } from './bytes';
import { VirtflowError } from './errors';

/**
 * A project's quota: how many VMs, vCPUs, MiB of memory and GiB of disk its VMs may hold in all
 * (every VM counts, running or not, as its capacity on a host does; a disk counts at its
 * provisioned size, not at what its qcow2 holds). An absent limit is no limit.
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
  diskGiB: z
    .number()
    .int()
    .min(0)
    .max(1024 ** 3)
    .optional(),
});
export type Quota = z.infer<typeof quotaSchema>;

/** What one VM holds of its project's quota. */
export interface VmUsage {
  vcpus: number;
  memoryMiB: number;
  /** Its disks' provisioned sizes, summed. */
  diskBytes: number;
}

/** What a project's VMs hold in all. */
export interface QuotaUsage extends VmUsage {
  vms: number;
}

const GiB = 1024 ** 3;

/**
 * A new VM's disks as it will record them, root first: the root at its asked size or else its
 * image's, then its data disks.
 */
export function newVmDisks(
  request: { diskSizeBytes?: number; dataDisks: number[] },
  imageBytes: number,
): number[] {
  return [request.diskSizeBytes ?? imageBytes, ...request.dataDisks];
}

/**
 * What `vm` would take beyond the quota beside the project's `others`, one reason per limit;
 * empty when it fits. With `before` (the VM as it is, for a change such as a grown disk) only
 * what grows is checked, and each reason names the growth: a project over a quota lowered since
 * is not refused a change that takes nothing more of it.
 */
export function quotaShortfall(quota: Quota, others: QuotaUsage, vm: VmUsage, before?: VmUsage): string[] {
  const short: string[] = [];
  if (before === undefined && quota.vms !== undefined && others.vms + 1 > quota.vms)
    short.push(`vms: ${others.vms} of ${quota.vms} already used`);
  const limits = [
    ['vcpus', quota.vcpus, String],
    ['memoryMiB', quota.memoryMiB, String],
    ['diskBytes', quota.diskGiB === undefined ? undefined : quota.diskGiB * GiB, formatBytes],
  ] as const;
  for (const [k, limit, show] of limits) {
    const had = before?.[k] ?? 0;
    const needs = vm[k] - had;
    const left = limit === undefined ? Infinity : limit - others[k] - had;
    if ((before === undefined || needs > 0) && needs > left)
      short.push(
        `${k === 'diskBytes' ? 'diskGiB' : k}: needs ${show(needs)}, ${show(Math.max(0, left))} of ${show(limit!)} left`,
      );
  }
  return short;
}

/** A VM, new or grown, would take its project past its quota. */
export class QuotaExceededError extends VirtflowError {
  constructor(project: string, vmId: string, short: string[]) {
    super('QuotaExceededError', `project ${project} has no room for vm ${vmId}: ${short.join('; ')}`);
  }
}
