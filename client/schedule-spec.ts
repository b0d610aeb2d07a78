import {
  DAYS_OF_WEEK,
  MONTHS,
  type CalendarSpec,
  type ScheduleOverlapPolicy,
  type ScheduleSpec,
} from '@temporalio/client';
import {
  calendarRanges,
  type BackupSchedule,
  type CalendarField,
  type overlapPolicies,
} from '../domain/backup';

/** One calendar field as Temporal's ranges; the policy's schema has already refused bad ones. */
function ranges(field: CalendarField, text: string): { start: number; end: number; step: number }[] | '*' {
  const r = calendarRanges(field, text);
  if (r instanceof Error) throw new Error(`${field}: ${r.message}`);
  return r;
}

/** Temporal names months and weekdays; the policy numbers them (1-12, 0-6 with Sunday 0). */
function named<T extends string>(names: readonly T[], offset: number, r: ReturnType<typeof ranges>) {
  if (r === '*') return '*';
  return r.flatMap(({ start, end, step }) => {
    const out: T[] = [];
    for (let n = start; n <= end; n += step) out.push(names[n - offset]);
    return out;
  });
}

/** A policy's schedule as a Temporal ScheduleSpec. */
export function toScheduleSpec(s: BackupSchedule): ScheduleSpec {
  const base = { timezone: s.timezone };
  if (s.cron) return { ...base, cronExpressions: [s.cron] };
  if (s.everySec) return { ...base, intervals: [{ every: `${s.everySec}s` }] };
  const c = s.calendar ?? {};
  const calendar: CalendarSpec = {
    second: ranges('second', c.second ?? '0'),
    minute: ranges('minute', c.minute ?? '0'),
    hour: ranges('hour', c.hour ?? '0'),
    dayOfMonth: ranges('dayOfMonth', c.dayOfMonth ?? '*'),
    month: named(MONTHS, 1, ranges('month', c.month ?? '*')),
    dayOfWeek: named(DAYS_OF_WEEK, 0, ranges('dayOfWeek', c.dayOfWeek ?? '*')),
  };
  return { ...base, calendars: [calendar] };
}

export const overlapPolicy: Record<(typeof overlapPolicies)[number], ScheduleOverlapPolicy> = {
  skip: 'SKIP',
  'buffer-one': 'BUFFER_ONE',
  'buffer-all': 'BUFFER_ALL',
  'cancel-other': 'CANCEL_OTHER',
  'terminate-other': 'TERMINATE_OTHER',
  'allow-all': 'ALLOW_ALL',
};
