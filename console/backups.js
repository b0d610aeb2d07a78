import { act, api, canOperate, h, show, table, when } from './ui.js';

const mib = (bytes) => (bytes === undefined ? '' : `${(bytes / 1048576).toFixed(1)} MiB`);

/** Pause or Resume, and Run now, for who may operate the policy's project (the fleet's: `*`). */
function policyControls(p) {
  if (!canOperate(p.project === 'fleet' ? '*' : p.project)) return '';
  const button = (control, label) =>
    h(
      'button',
      {
        'data-policy-control': control,
        onclick: () =>
          act(
            async () => (
              await api('POST', `/v1/backup-policies/${encodeURIComponent(p.name)}/${control}`, {}),
              backupsView()
            ),
          ),
      },
      label,
    );
  return [
    p.paused === 'yes' ? button('resume', 'Resume') : button('pause', 'Pause'),
    button('trigger', 'Run now'),
  ];
}

/**
 * Backups of the VMs the operator may see, newest first, and the backup policies the operator
 * may read (its projects', and the fleet's with a fleet grant) with their next run and how many
 * runs in a row failed; who may operate a policy's project pauses, resumes or runs it here.
 */
export async function backupsView() {
  const [backups, policies] = await Promise.all([
    api('GET', '/v1/backups'),
    api('GET', '/v1/backup-policies'),
  ]);
  show(
    h('h1', {}, 'Backups'),
    table(
      ['backup', 'VM', 'project', 'kind', 'state', 'size', 'finished', 'verified'],
      backups.map((b) =>
        h(
          'tr',
          { 'data-backup': b.backupId },
          h('td', {}, b.backupId),
          h('td', {}, h('a', { href: `#/vms/${encodeURIComponent(b.vmId)}` }, b.vmId)),
          h('td', {}, b.project),
          h('td', { title: b.fullReason ?? '' }, b.kind),
          h('td', {}, b.state),
          h('td', {}, mib(b.sizeBytes)),
          h('td', {}, when(b.finishedAt)),
          h('td', {}, when(b.verifiedAt)),
        ),
      ),
    ),
    policies.length
      ? [
          h('h2', {}, 'Policies'),
          table(
            [
              'policy',
              'project',
              'VMs',
              'schedule',
              'paused',
              'next run',
              'last run',
              'last outcome',
              'failures in a row',
              '',
            ],
            policies.map((p) =>
              h(
                'tr',
                { 'data-policy': p.name, 'data-paused': p.paused, class: p.failures > 0 ? 'failing' : '' },
                h('td', {}, p.name),
                h('td', {}, p.project),
                h('td', {}, p.vms),
                h('td', {}, p.schedule),
                h('td', {}, p.paused),
                h('td', {}, when(p.next)),
                h('td', {}, when(p['last-run'])),
                h('td', {}, p['last-outcome'] ?? ''),
                h('td', {}, String(p.failures)),
                h('td', {}, policyControls(p)),
              ),
            ),
          ),
        ]
      : '',
  );
}
