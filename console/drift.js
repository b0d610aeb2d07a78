import { act, api, canAdminister, h, hasFleetGrant, show, table, when } from './ui.js';

/**
 * What the reconciler found between the inventory and the hosts: fixed automatically, or open
 * with the fix it proposes, which a fleet admin applies from here.
 */
export async function driftView() {
  if (!hasFleetGrant()) return show(h('h1', {}, 'Drift'), h('p', {}, 'Drift is read with a fleet grant.'));
  const findings = await api('GET', '/v1/drift');
  const fix = (d) =>
    h(
      'button',
      {
        'data-fix': d.id,
        onclick: () =>
          act(async () => (await api('POST', `/v1/drift/${encodeURIComponent(d.id)}/fix`, {}), driftView())),
      },
      'Fix',
    );
  show(
    h('h1', {}, 'Drift'),
    findings.length ? '' : h('p', { id: 'no-drift' }, 'The inventory agrees with every host.'),
    table(
      ['finding', 'kind', 'host', 'state', 'last seen', 'what', 'fix', ''],
      findings.map((d) =>
        h(
          'tr',
          { 'data-drift': d.id },
          h('td', {}, d.id),
          h('td', {}, d.kind),
          h('td', {}, d.hostId ?? ''),
          h('td', {}, d.state),
          h('td', {}, when(d.lastSeenAt)),
          h('td', {}, d.message),
          h('td', {}, d.fix),
          h('td', {}, canAdminister() && d.state === 'open' ? fix(d) : ''),
        ),
      ),
    ),
  );
}
