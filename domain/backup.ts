import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { sshKeysSchema, userDataSchema } from './guest';
import { idSchema } from './ids';
import { labelSelectorSchema } from './labels';

/**
 * Backups: requests, retention and policies. Validated at the edge and again by the first
 * activity of each workflow, so an invalid spec or retention never creates anything.
 */

const keep = (what: string) =>
  z
    .number({ error: `must be a whole number of ${what} to keep` })
    .int(`must be a whole number of ${what} to keep`)
    .min(0, 'must not be negative')
    .max(10_000, 'must be at most 10000')
    .optional();

/** Proxmox Backup Server's rules, processed in this order. */
export const retentionSchema = z
  .object({
    keepLast: keep('backups'),
    keepHourly: keep('hours'),
    keepDaily: keep('days'),
    keepWeekly: keep('weeks'),
    keepMonthly: keep('months'),
    keepYearly: keep('years'),
  })
  .strict();
export type RetentionPolicy = z.infer<typeof retentionSchema>;

export const backupRequestSchema = z.object({
  vmId: idSchema,
  /** Start a new chain even if the current one is intact. */
  full: z.boolean().default(false),
  /** Cap on the copy rate in MiB/s (0: as fast as the disks allow). */
  maxSpeedMiBps: z.number().int().min(0).max(100_000).default(0),
  /** The policy that asked for it, if any. */
  policy: idSchema.optional(),
  /**
   * Start a new chain once the current one holds this many backups. Incrementals depend on
   * their parents, so retention can only free space chain by chain.
   */
  fullEvery: z.number().int().min(1).max(10_000).optional(),
});
export type BackupRequest = z.input<typeof backupRequestSchema>;

export const restoreRequestSchema = z.object({
  backupId: z.string().min(1, 'must name a backup'),
  /** The new VM's id. */
  vmId: idSchema,
  host: idSchema.optional(),
  bootTimeoutSec: z.number().int().min(10).max(1800).default(180),
  /** First-boot configuration of the new VM; by default what the VM had when it was backed up. */
  sshKeys: sshKeysSchema.optional(),
  userData: userDataSchema.optional(),
  /**
   * The new VM's NICs, on the networks the backed-up VM was on: `fresh` MACs and addresses (the
   * default: the original may still run), `same-addresses` (its addresses again, refused while
   * taken; fresh MACs), or `none`.
   */
  nics: z
    .enum(['fresh', 'same-addresses', 'none'], { error: 'must be fresh, same-addresses or none' })
    .default('fresh'),
});
export type RestoreRequest = z.input<typeof restoreRequestSchema>;

function validCron(expr: string): boolean {
  try {
    CronExpressionParser.parse(expr);
    return true;
  } catch {
    return false;
  }
}

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export type CalendarField = 'second' | 'minute' | 'hour' | 'dayOfMonth' | 'month' | 'dayOfWeek';
const calendarBounds: Record<CalendarField, [number, number]> = {
  second: [0, 59],
  minute: [0, 59],
  hour: [0, 23],
  dayOfMonth: [1, 31],
  month: [1, 12],
  dayOfWeek: [0, 6],
};

/**
 * One calendar field ("*", "5", "1-5", "*\/15", "0,30") as ranges with a step, or an Error
 * saying what is wrong: a value outside the field's bounds, a reversed range, a step of 0
 * (which would never advance).
 */
export function calendarRanges(
  field: CalendarField,
  text: string,
): { start: number; end: number; step: number }[] | '*' | Error {
  if (text === '*') return '*';
  if (!/^(\*(\/\d+)?|\d+(-\d+)?(\/\d+)?)(,(\*(\/\d+)?|\d+(-\d+)?(\/\d+)?))*$/.test(text))
    return new Error('must be *, a number, a range or a list');
  const [min, max] = calendarBounds[field];
  const out = [];
  for (const part of text.split(',')) {
    const [range, stepText] = part.split('/');
    const [startText, endText] = range === '*' ? [String(min), String(max)] : range.split('-');
    const start = Number(startText);
    const end = endText === undefined ? (stepText ? max : start) : Number(endText);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (start < min || end > max || start > end) return new Error(`${part} is outside ${min}-${max}`);
    if (step < 1) return new Error(`${part}: the step must be at least 1`);
    out.push({ start, end, step });
  }
  return out;
}

const calendarField = (field: CalendarField) =>
  z.string().superRefine((text, ctx) => {
    const r = calendarRanges(field, text);
    if (r instanceof Error) ctx.addIssue({ code: 'custom', message: r.message });
  });

/** When a policy runs: exactly one of a cron expression, a calendar, or an interval. */
export const backupScheduleSchema = z
  .object({
    cron: z
      .string()
      .refine(validCron, 'is not a valid cron expression (minute hour day-of-month month day-of-week)')
      .optional(),
    calendar: z
      .object({
        second: calendarField('second').optional(),
        minute: calendarField('minute').optional(),
        hour: calendarField('hour').optional(),
        dayOfMonth: calendarField('dayOfMonth').optional(),
        month: calendarField('month').optional(),
        dayOfWeek: calendarField('dayOfWeek').optional(),
      })
      .strict()
      .optional(),
    /** An interval in seconds (at least 5). */
    everySec: z
      .number()
      .int()
      .min(5, 'must be at least 5 seconds')
      .max(366 * 86_400)
      .optional(),
    timezone: z.string().refine(validTimezone, 'is not a known IANA time zone').default('UTC'),
  })
  .refine((s) => [s.cron, s.calendar, s.everySec].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of cron, calendar or everySec',
  });
export type BackupSchedule = z.output<typeof backupScheduleSchema>;

export const overlapPolicies = [
  'skip',
  'buffer-one',
  'buffer-all',
  'cancel-other',
  'terminate-other',
  'allow-all',
] as const;

export const backupPolicySchema = z
  .object({
    name: idSchema,
    /**
     * The project the policy belongs to: it backs up only that project's VMs, and that project's
     * admins manage it. Absent: a fleet policy, over every project's VMs, a fleet admin's.
     */
    project: idSchema.optional(),
    /** Which VMs: an explicit list, or every VM carrying all these labels. */
    vmIds: z.array(idSchema).min(1).optional(),
    vmLabels: labelSelectorSchema.optional(),
    schedule: backupScheduleSchema,
    retention: retentionSchema.default({ keepLast: 7 }),
    overlap: z.enum(overlapPolicies).default('skip'),
    /** How far back missed runs are caught up after an outage. */
    catchupWindowSec: z
      .number()
      .int()
      .min(60)
      .max(366 * 86_400)
      .default(3600),
    /** Pause the schedule after this many consecutive failed runs. */
    pauseAfterFailures: z.number().int().min(1).max(1000).default(3),
    /** Raise an audit event for a VM with no good backup for this long. */
    alertAfterHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 366)
      .default(48),
    maxParallel: z.number().int().min(1).max(64).default(2),
    /** Re-verify a VM's newest chain when its last verification is older than this. */
    reverifyAfterHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 366)
      .default(24),
    /** A new full chain after this many backups (see backupRequestSchema.fullEvery). */
    fullEvery: z.number().int().min(1).max(10_000).default(7),
    maxSpeedMiBps: z.number().int().min(0).max(100_000).default(0),
  })
  .refine((p) => (p.vmIds === undefined) !== (p.vmLabels === undefined), {
    message: 'give exactly one of vmIds or vmLabels',
    path: ['vmIds'],
  });
export type BackupPolicyInput = z.input<typeof backupPolicySchema>;

/**
 * What an update may change of a policy, each field as a create checks it; nothing defaults
 * (an absent field keeps its value), and the name and project never change.
 */
export const backupPolicyChangeSchema = z.strictObject({
  schedule: backupScheduleSchema.optional(),
  retention: retentionSchema.optional(),
  overlap: z.enum(overlapPolicies).optional(),
});
export type BackupPolicyChange = z.input<typeof backupPolicyChangeSchema>;
export type OverlapPolicy = (typeof overlapPolicies)[number];
export type BackupPolicySpec = z.output<typeof backupPolicySchema>;
