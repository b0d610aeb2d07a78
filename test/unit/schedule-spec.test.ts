import { toScheduleSpec } from '../../client/schedule-spec';

describe('backup policy schedules as Temporal ScheduleSpecs', () => {
  test('cron and intervals pass through with the time zone', () => {
    expect(toScheduleSpec({ cron: '0 2 * * *', timezone: 'Europe/Paris' })).toEqual({
      timezone: 'Europe/Paris',
      cronExpressions: ['0 2 * * *'],
    });
    expect(toScheduleSpec({ everySec: 90, timezone: 'UTC' })).toEqual({
      timezone: 'UTC',
      intervals: [{ every: '90s' }],
    });
  });

  test('calendar fields become ranges, months and weekdays by name', () => {
    const spec = toScheduleSpec({
      calendar: { minute: '*/15', hour: '1-3,22', month: '1,12', dayOfWeek: '1-5' },
      timezone: 'UTC',
    });
    const cal = spec.calendars![0];
    expect(cal.second).toEqual([{ start: 0, end: 0, step: 1 }]);
    expect(cal.minute).toEqual([{ start: 0, end: 59, step: 15 }]);
    expect(cal.hour).toEqual([
      { start: 1, end: 3, step: 1 },
      { start: 22, end: 22, step: 1 },
    ]);
    expect(cal.dayOfMonth).toBe('*');
    expect(cal.month).toEqual(['JANUARY', 'DECEMBER']);
    expect(cal.dayOfWeek).toEqual(['MONDAY', 'TUESDAY', 'WEDNESDAY', 'THURSDAY', 'FRIDAY']);
  });

  test.each([
    [{ minute: '75' }, 'minute: 75 is outside 0-59'],
    [{ hour: '5-2' }, 'hour: 5-2 is outside 0-23'],
    [{ dayOfMonth: '0' }, 'dayOfMonth: 0 is outside 1-31'],
  ])('refuses %j naming the field', (calendar, message) => {
    expect(() => toScheduleSpec({ calendar, timezone: 'UTC' })).toThrow(message);
  });
});
