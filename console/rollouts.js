import {
  act,
  api,
  canAdminister,
  h,
  refreshEvery,
  runLink,
  show,
  stopRefreshing,
  table,
  when,
} from './ui.js';

const path = (name) => `/v1/rollouts/${encodeURIComponent(name)}`;

/** Rolling patches, newest first; a fleet admin may start one. */
export async function rolloutsView() {
  const rollouts = await api('GET', '/v1/rollouts');
  show(
    h('h1', {}, 'Rollouts'),
    canAdminister() ? startForm() : '',
    table(
      ['rollout', 'status', 'started', 'ended', 'run'],
      rollouts.map((r) =>
        h(
          'tr',
          { 'data-rollout': r.name },
          h('td', {}, h('a', { href: `#/rollouts/${encodeURIComponent(r.name)}` }, r.name)),
          h('td', {}, r.status),
          h('td', {}, when(r.startedAt)),
          h('td', {}, when(r.closedAt)),
          h('td', {}, runLink(r.temporalUrl, 'Temporal')),
        ),
      ),
    ),
  );
}

function startForm() {
  const field = (label, attrs) => h('label', {}, label, h('input', attrs));
  return h(
    'form',
    {
      class: 'inline',
      id: 'start-rollout',
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        return act(async () => {
          const name = f.get('name');
          await api('POST', '/v1/rollouts', {
            name,
            patch: f.get('patch'),
            hosts: String(f.get('hosts'))
              .split(/[\s,]+/)
              .filter(Boolean),
            maxUnavailable: Number(f.get('maxUnavailable')),
            canaryHosts: Number(f.get('canaryHosts')),
            failureBudget: Number(f.get('failureBudget')),
          });
          location.hash = `#/rollouts/${encodeURIComponent(name)}`;
        });
      },
    },
    field('name', { name: 'name', required: true }),
    field('patch', { name: 'patch', required: true }),
    field('hosts (in order)', { name: 'hosts', required: true, placeholder: 'host-a, host-b' }),
    field('max unavailable', { name: 'maxUnavailable', type: 'number', value: 1, min: 1 }),
    field('canaries', { name: 'canaryHosts', type: 'number', value: 1, min: 0 }),
    field('failure budget', { name: 'failureBudget', type: 'number', value: 0, min: 0 }),
    h('button', { type: 'submit' }, 'Start rollout'),
  );
}

/**
 * One rollout as it runs: its phase, what it waits for, and each host's state, refreshed every
 * two seconds. A fleet admin gets its controls: pause, resume, abort, and skip or retry a host.
 */
export async function rolloutView(name) {
  const page = h('div', { id: 'rollout' });
  const render = async () => {
    const r = await api('GET', path(name));
    const p = r.progress ?? {};
    const admin = canAdminister() && r.status === 'RUNNING';
    const control = (label, url) =>
      h(
        'button',
        {
          'data-control': label.toLowerCase(),
          onclick: () => act(async () => (await api('POST', url, {}), render())),
        },
        label,
      );
    const hostControls = (x) =>
      admin && (x.state === 'failed' || x.state === 'pending')
        ? [
            control('Skip', `${path(name)}/hosts/${encodeURIComponent(x.hostId)}/skip`),
            x.state === 'failed'
              ? control('Retry', `${path(name)}/hosts/${encodeURIComponent(x.hostId)}/retry`)
              : '',
          ]
        : [];
    page.replaceChildren(
      h(
        'dl',
        {},
        h('dt', {}, 'status'),
        h('dd', { id: 'rollout-status' }, r.status),
        h('dt', {}, 'phase'),
        h('dd', { id: 'rollout-phase' }, p.phase ?? ''),
        h('dt', {}, 'now'),
        h('dd', {}, p.message ?? ''),
        p.waitingFor ? [h('dt', {}, 'waiting for'), h('dd', { id: 'waiting-for' }, p.waitingFor)] : [],
        h('dt', {}, 'started by'),
        h('dd', {}, r.actor ?? ''),
        h('dt', {}, 'run'),
        h('dd', {}, runLink(r.temporalUrl, `rollout/${name}`)),
      ),
      admin
        ? h(
            'p',
            { id: 'rollout-controls' },
            p.paused ? control('Resume', `${path(name)}/resume`) : control('Pause', `${path(name)}/pause`),
            p.aborted ? '' : control('Abort', `${path(name)}/abort`),
          )
        : '',
      table(
        ['host', 'state', 'attempts', 'reason', ''],
        (p.hosts ?? []).map((x) =>
          h(
            'tr',
            { 'data-host': x.hostId, 'data-state': x.state },
            h('td', {}, x.hostId),
            h('td', { class: `host-${x.state}` }, x.state),
            h('td', {}, String(x.attempts)),
            h('td', {}, x.reason ?? ''),
            h('td', {}, hostControls(x)),
          ),
        ),
      ),
    );
    return r.status;
  };
  show(h('h1', {}, `Rollout ${name}`), page);
  if ((await render()) !== 'RUNNING') return;
  refreshEvery(2000, async () => {
    if ((await render().catch(() => 'RUNNING')) !== 'RUNNING') stopRefreshing();
  });
}
