import { z } from 'zod';
import { idSchema } from './ids';
import { migrationPolicySchema } from './migration';

/** What happens to a VM that cannot be moved off a host entering maintenance. */
export const unmovablePolicies = ['block', 'stop'] as const;

export const enterMaintenanceSchema = z.object({
  hostId: idSchema,
  /** Migrations out of this host at once. */
  maxParallel: z.number().int().min(1).max(32).default(2),
  /** Migrations into any one target at once. */
  maxInboundPerHost: z.number().int().min(1).max(32).default(2),
  /** Other targets tried for a VM whose migration failed. */
  retriesPerVm: z.number().int().min(0).max(10).default(2),
  /**
   * After the retries: `block` leaves the host visibly blocked until an operator retries or
   * gives up; `stop` powers the VM off (never silently: it is reported and audited).
   */
  onUnmovable: z.enum(unmovablePolicies).default('block'),
  migration: migrationPolicySchema.optional(),
  /** Evacuate onto hosts at this patch level first (a rolling patch's already-patched hosts). */
  preferPatchLevel: z.string().min(1).optional(),
});
export type EnterMaintenanceRequest = z.input<typeof enterMaintenanceSchema>;

export const exitMaintenanceSchema = z.object({
  hostId: idSchema,
  /** Migrate the VMs the last evacuation moved off back onto the host. */
  migrateBack: z.boolean().default(false),
});
export type ExitMaintenanceRequest = z.input<typeof exitMaintenanceSchema>;
