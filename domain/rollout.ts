import { z } from 'zod';
import { idSchema } from './ids';

export const rolloutRequestSchema = z
  .object({
    name: idSchema,
    patch: idSchema,
    /** An explicit host list (in this order unless `order` says otherwise) … */
    hosts: z
      .array(idSchema)
      .min(1)
      .superRefine((hosts, ctx) => {
        const twice = hosts.find((h, i) => hosts.indexOf(h) !== i);
        if (twice) ctx.addIssue({ code: 'custom', message: `lists host ${twice} twice` });
      })
      .optional(),
    /** … or every host of a cluster. */
    cluster: z.string().min(1).optional(),
    /**
     * `fastest`: canaries from the least-loaded hosts (the unproven patch moves the fewest VMs),
     * then the most-loaded first, so the quickest hosts fill the window's last places and the
     * rollout does not wait on one long host at its end. `least-loaded`: lightest first
     * throughout. `given`: the list's order.
     */
    order: z.enum(['given', 'least-loaded', 'fastest']).default('fastest'),
    /** Hosts patched first, one at a time, before any batch. */
    canaryHosts: z.number().int().min(0).max(100).default(1),
    /** Hosts out of service at once: a count, or a percentage of the hosts ("10%"). */
    maxUnavailable: z
      .union([
        z.number().int().min(1),
        z
          .string()
          .regex(/^\d{1,3}%$/, 'must be a count or a percentage like "10%"')
          .refine((p) => Number(p.slice(0, -1)) >= 1 && Number(p.slice(0, -1)) <= 100, 'must be 1% to 100%'),
      ])
      .default(1),
    retriesPerHost: z.number().int().min(0).max(10).default(1),
    retryDelaySec: z.number().int().min(0).max(3600).default(5),
    /** Failed hosts tolerated before the rollout halts and waits for an operator. */
    failureBudget: z.number().int().min(0).max(1000).default(0),
    /**
     * History events one run may grow to before it continues as new (Temporal's own suggestion
     * also triggers it): a 5,000-host rollout keeps every run's history small.
     */
    historyLimit: z.number().int().min(200).max(40_000).default(10_000),
  })
  .refine((r) => (r.hosts === undefined) !== (r.cluster === undefined), {
    message: 'give exactly one of hosts or cluster',
    path: ['hosts'],
  });
export type RolloutRequest = z.input<typeof rolloutRequestSchema>;
export type RolloutSpec = z.output<typeof rolloutRequestSchema>;

export type HostRolloutState = 'pending' | 'patching' | 'patched' | 'skipped' | 'failed';

/** How many hosts may be out of service at once, never less than one. */
export function batchSize(maxUnavailable: number | string, hostCount: number): number {
  if (typeof maxUnavailable === 'number') return Math.max(1, maxUnavailable);
  return Math.max(1, Math.floor((Number(maxUnavailable.slice(0, -1)) / 100) * hostCount));
}
