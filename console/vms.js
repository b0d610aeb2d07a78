import {
  act,
  api,
  ApiError,
  apiPage,
  authorized,
  canOperate,
  failure,
  h,
  operableProjects,
  show,
  table,
  TOKEN_KEY,
  view,
} from './ui.js';

function createForm() {
  const projects = operableProjects();
  if (!projects.length) return undefined;
  const field = (label, attrs) => h('label', {}, label, h('input', attrs));
  return h(
    'form',
    {
      class: 'inline',
      id: 'create-vm',
      onsubmit: (e) => {
        e.preventDefault();
        const f = new FormData(e.target);
        return act(async () => {
          const op = await api('POST', '/v1/vms', {
            vmId: f.get('vmId'),
            image: f.get('image'),
            memoryMiB: Number(f.get('memoryMiB')),
            project: f.get('project'),
          });
          location.hash = `#/vms/${encodeURIComponent(op.workflowId.slice(3))}`;
        });
      },
    },
    field('name', { name: 'vmId', required: true }),
    field('image', { name: 'image', required: true }),
    field('memory (MiB)', { name: 'memoryMiB', type: 'number', value: 128, min: 96 }),
    h(
      'label',
      {},
      'project',
      h(
        'select',
        { name: 'project' },
        projects.map((p) => h('option', {}, p)),
      ),
    ),
    h('button', { type: 'submit' }, 'Create VM'),
  );
}

/** VMs a page at a time (100 by id), as the API pages them; `after` is the last id of the page before. */
export async function vmsView(after) {
  const page = await apiPage(`/v1/vms?limit=100${after ? `&after=${encodeURIComponent(after)}` : ''}`);
  const vms = page.items;
  show(
    h('h1', {}, 'VMs'),
    createForm() ?? '',
    table(
      ['VM', 'project', 'state', 'host', 'addresses', 'memory'],
      vms.map((v) =>
        h(
          'tr',
          { 'data-vm': v.vmId },
          h('td', {}, h('a', { href: `#/vms/${encodeURIComponent(v.vmId)}` }, v.vmId)),
          h('td', {}, v.project),
          h('td', { class: `state-${v.state}` }, v.state),
          h('td', {}, v.host ?? ''),
          h('td', {}, v.nics.map((n) => `${n.network} ${n.ip}`).join(', ')),
          h('td', {}, `${v.memoryMiB} MiB`),
        ),
      ),
    ),
    page.next
      ? h(
          'p',
          {},
          h(
            'a',
            { id: 'next-page', href: `#/vms?after=${encodeURIComponent(vms.at(-1).vmId)}` },
            'Next page',
          ),
        )
      : '',
  );
}

/**
 * What the guest shows, for an operator: the end of its console log and its screen, each read
 * on its host when asked (the screen only while it runs).
 */
function guestPanel(vm) {
  const base = `/v1/vms/${encodeURIComponent(vm.vmId)}`;
  const log = h('pre', { id: 'console-log' });
  const screen = h('p', { id: 'screen' });
  const readLog = () =>
    act(async () => log.replaceChildren((await api('GET', `${base}/console?bytes=4096`)).text || '(empty)'));
  const readScreen = () =>
    act(async () => {
      const res = await authorized(`${base}/screenshot`);
      if (!res.ok) throw new ApiError((await res.json()).message);
      const img = h('img', { alt: `the screen of ${vm.vmId}`, src: URL.createObjectURL(await res.blob()) });
      screen.replaceChildren(img);
    });
  return h(
    'section',
    { id: 'guest' },
    h('h2', {}, 'Console'),
    h('button', { id: 'read-console', onclick: readLog }, 'Show the console log'),
    log,
    vm.state === 'running'
      ? h('button', { id: 'take-screenshot', onclick: readScreen }, 'Take a screenshot')
      : '',
    screen,
  );
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

/** The operation panel: phase, message and, for a migration, bytes, rate and round. */
function operationPanel(op) {
  const p = op.progress;
  const stats = p?.stats;
  return h(
    'section',
    { id: 'operation', 'data-status': op.status, 'data-type': op.type },
    h('h2', {}, `${op.type}: ${op.status}`),
    h(
      'dl',
      {},
      h('dt', {}, 'started by'),
      h('dd', {}, op.actor ?? 'a schedule'),
      p
        ? [
            h('dt', {}, 'phase'),
            h('dd', { id: 'phase' }, p.phase),
            h('dt', {}, 'now'),
            h('dd', {}, p.message),
          ]
        : [],
      stats
        ? [
            h('dt', {}, 'transferred'),
            h(
              'dd',
              { id: 'transferred' },
              `${mib(stats.transferredBytes ?? 0)} of ${mib(stats.totalBytes ?? 0)}`,
            ),
            h('dt', {}, 'rate'),
            h('dd', {}, `${(stats.mbps ?? 0).toFixed(1)} Mbit/s`),
            h('dt', {}, 'round'),
            h('dd', {}, String(stats.iteration ?? 0)),
          ]
        : [],
      op.failure ? [h('dt', {}, 'failed'), h('dd', { class: 'error' }, op.failure.message)] : [],
      h('dt', {}, 'run'),
      h('dd', {}, h('a', { href: op.temporalUrl, target: '_blank', rel: 'noopener' }, op.workflowId)),
    ),
  );
}

/** Follows the VM's operation stream (fetch, not EventSource: the token goes in a header). */
async function follow(vmId, onOperation, signal) {
  const res = await fetch(`/v1/vms/${encodeURIComponent(vmId)}/operation/events`, {
    headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` },
    signal,
  });
  if (!res.ok) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
      buffer = buffer.slice(end + 2);
      if (data) onOperation(JSON.parse(data));
    }
  }
}

let following;

/** Stops following the VM page's operation stream (another page is shown). */
export const stopFollowing = () => following?.abort();

export async function vmView(vmId) {
  const vm = await api('GET', `/v1/vms/${encodeURIComponent(vmId)}`).catch((err) => err);
  const operable = !(vm instanceof Error) && canOperate(vm.project);
  const panel = h('div', { id: 'operation-panel' });
  const controls = h('p', { id: 'controls' });
  const render = (v) => {
    const action = (label, method, path, body) =>
      h('button', { onclick: () => act(async () => (await api(method, path, body), vmView(vmId))) }, label);
    const base = `/v1/vms/${encodeURIComponent(vmId)}`;
    controls.replaceChildren(
      ...(operable && v
        ? [
            v.state === 'stopped' ? action('Start', 'POST', `${base}/start`, {}) : '',
            v.state === 'running' ? action('Stop', 'POST', `${base}/stop`, { gracefulTimeoutSec: 10 }) : '',
            v.state === 'running'
              ? h(
                  'form',
                  {
                    class: 'inline',
                    id: 'migrate',
                    onsubmit: (e) => {
                      e.preventDefault();
                      const f = new FormData(e.target);
                      const to = f.get('to') || undefined;
                      const bw = Number(f.get('bandwidth'));
                      return act(async () => {
                        await api('POST', `${base}/migrate`, { to, policy: { maxBandwidthMiBps: bw } });
                        vmView(vmId);
                      });
                    },
                  },
                  h('label', {}, 'to host', h('input', { name: 'to', placeholder: 'placement picks' })),
                  h(
                    'label',
                    {},
                    'MiB/s',
                    h('input', { name: 'bandwidth', type: 'number', value: 128, min: 1 }),
                  ),
                  h('button', { type: 'submit' }, 'Migrate'),
                )
              : '',
            action('Delete', 'DELETE', base, { gracefulTimeoutSec: 10 }),
          ]
        : []),
    );
  };
  const showOperation = (op) => {
    panel.replaceChildren(operationPanel(op));
    // One operation at a time holds a VM: while one runs, no other is offered (the API would
    // refuse it as busy). The controls come back when the stream ends.
    if (op.status === 'RUNNING') controls.replaceChildren();
    if (operable && op.status === 'RUNNING' && op.type === 'liveMigration')
      panel.append(
        h(
          'button',
          {
            id: 'abort',
            onclick: () =>
              act(() =>
                api('POST', `/v1/vms/${encodeURIComponent(vmId)}/migration/abort`, {
                  reason: 'from the console',
                }),
              ),
          },
          'Abort migration',
        ),
      );
  };
  if (vm instanceof Error) {
    show(h('h1', {}, vmId), failure(vm), panel);
  } else {
    show(
      h('h1', {}, vmId),
      h(
        'dl',
        { id: 'vm' },
        h('dt', {}, 'state'),
        h('dd', { id: 'vm-state', class: `state-${vm.state}` }, vm.state),
        h('dt', {}, 'host'),
        h('dd', { id: 'vm-host' }, vm.host ?? ''),
        h('dt', {}, 'project'),
        h('dd', {}, vm.project),
        h('dt', {}, 'image'),
        h('dd', {}, vm.image),
        h('dt', {}, 'memory'),
        h('dd', {}, `${vm.memoryMiB} MiB, ${vm.vcpus} vCPU`),
        h('dt', {}, 'addresses'),
        h('dd', {}, vm.nics.map((n) => `${n.network} ${n.mac} ${n.ip}`).join(', ') || 'none'),
      ),
      controls,
      panel,
      operable && vm.host ? guestPanel(vm) : '',
    );
    render(vm);
  }
  following?.abort();
  following = new AbortController();
  const mine = following;
  follow(vmId, showOperation, following.signal)
    .then(async () => {
      // The operation ended: show the VM as it is now (a create's VM exists only from here on).
      if (mine.signal.aborted) return;
      const now = await api('GET', `/v1/vms/${encodeURIComponent(vmId)}`).catch(() => undefined);
      if (!now || mine.signal.aborted) return;
      if (vm instanceof Error) return vmView(vmId); // the page had no VM to show: show it whole
      document.getElementById('vm-state')?.replaceChildren(now.state);
      document.getElementById('vm-host')?.replaceChildren(now.host ?? '');
      render(now);
    })
    .catch(() => undefined);
}
