import { backupPolicySchema } from '../../domain/backup';
import { parseInput } from '../../domain/errors';
import { createVmRequestSchema } from '../../domain/requests';
import { rolloutRequestSchema } from '../../domain/rollout';

/**
 * Input a hostile or careless operator tried through the CLI. The client and each workflow's
 * first activity parse requests with these same schemas, so a refusal here is a refusal in both,
 * before anything changes; each names the field and the reason.
 */
describe('hostile input is refused by the schemas the client and the workflows share', () => {
  const policy = { name: 'nightly', schedule: { everySec: 3600 } };
  const everyDb = { ...policy, vmLabels: { role: 'db' } };
  const rollout = { name: 'r1', patch: 'security-2026-11' };

  test.each([
    [
      'a VM label value with an escape sequence',
      () =>
        parseInput(createVmRequestSchema, { vmId: 'a', image: 'b', labels: { team: 'ops\u001b[31m' } }, ''),
      /^labels\.team: label values may not contain control characters/,
    ],
    [
      'a VM label value with a newline',
      () => parseInput(createVmRequestSchema, { vmId: 'a', image: 'b', labels: { team: 'a\nb' } }, ''),
      /^labels\.team: label values may not contain control characters/,
    ],
    [
      'a rollout that lists the same host twice',
      () => parseInput(rolloutRequestSchema, { ...rollout, hosts: ['host-a', 'host-b', 'host-a'] }, ''),
      /^hosts: lists host host-a twice/,
    ],
    [
      'a max-unavailable percentage over 100%',
      () => parseInput(rolloutRequestSchema, { ...rollout, hosts: ['host-a'], maxUnavailable: '150%' }, ''),
      /^maxUnavailable: must be 1% to 100%/,
    ],
    [
      'a max-unavailable of 0%',
      () => parseInput(rolloutRequestSchema, { ...rollout, hosts: ['host-a'], maxUnavailable: '0%' }, ''),
      /^maxUnavailable: must be 1% to 100%/,
    ],
    [
      'a backup policy selector that names no label (every VM)',
      () => parseInput(backupPolicySchema, { ...policy, vmLabels: {} }, ''),
      /^vmLabels: must name at least one label/,
    ],
    [
      'a backup policy selector key looser than a VM label key',
      () => parseInput(backupPolicySchema, { ...policy, vmLabels: { 'Team Name': 'ops' } }, ''),
      /^vmLabels\.Team Name: label keys are lowercase DNS-like names/,
    ],
    [
      'a calendar month with a step of 0 (schedule conversion would never end)',
      () => parseInput(backupPolicySchema, { ...everyDb, schedule: { calendar: { month: '1/0' } } }, ''),
      /^schedule\.calendar\.month: 1\/0: the step must be at least 1/,
    ],
    [
      'a calendar hour outside the day',
      () => parseInput(backupPolicySchema, { ...everyDb, schedule: { calendar: { hour: '0-24' } } }, ''),
      /^schedule\.calendar\.hour: 0-24 is outside 0-23/,
    ],
  ])('%s', (_what, parse, message) => {
    expect(parse).toThrow(message);
  });

  test('what an operator means is still accepted', () => {
    expect(
      parseInput(
        rolloutRequestSchema,
        { ...rollout, hosts: ['host-a', 'host-b'], maxUnavailable: '100%' },
        '',
      ),
    ).toMatchObject({ hosts: ['host-a', 'host-b'] });
    expect(
      parseInput(
        backupPolicySchema,
        { ...everyDb, schedule: { calendar: { minute: '*/15', month: '1-12/3' } } },
        '',
      ),
    ).toMatchObject({ name: 'nightly' });
    expect(
      parseInput(createVmRequestSchema, { vmId: 'a', image: 'b', labels: { team: 'ops – Zürich' } }, ''),
    ).toMatchObject({ labels: { team: 'ops – Zürich' } });
  });
});
