// virtflow's web console: plain ES modules, no build step. It talks only to the API with the
// operator's token in the Authorization header (kept in sessionStorage, never a cookie, so no
// other site can make the browser act for its user), and builds the page with DOM calls, never
// HTML strings, so nothing the inventory holds is ever run as markup.

const view = document.getElementById('view');
const TOKEN_KEY = 'virtflow-token';
let me; // { actor, grants }

/** Builds an element: h('td', { class: 'x' }, 'text', child). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat())
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

class ApiError extends Error {}

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/login';
    throw new ApiError('the token is not valid');
  }
  const answer = res.status === 204 ? undefined : await res.json();
  if (!res.ok) throw new ApiError(answer?.message ?? `HTTP ${res.status}`);
  return answer;
}

/** The role rule of the API (domain/access.ts), so the console offers only what is allowed. */
const rank = { viewer: 0, operator: 1, admin: 2 };
function canOperate(project) {
  return me.grants.some((g) => (g.project === project || g.project === '*') && rank[g.role] >= rank.operator);
}
const operableProjects = () =>
  me.grants
    .filter((g) => rank[g.role] >= rank.operator)
    .map((g) => (g.project === '*' ? 'default' : g.project));

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function failure(err) {
  return h('p', { class: 'error', role: 'alert' }, err.message);
}

/** Runs an action; its error is shown above the page, the page reloaded after it. */
async function act(fn) {
  try {
    await fn();
  } catch (err) {
    view.prepend(failure(err));
  }
}

function loginView() {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off', size: 70 });
  const form = h(
    'form',
    {
      class: 'inline',
      onsubmit: async (e) => {
        e.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        try {
          me = await api('GET', '/v1/whoami');
          location.hash = '#/vms';
        } catch (err) {
          form.after(failure(err));
        }
      },
    },
    h('label', {}, 'API token', input),
    h('button', { type: 'submit' }, 'Log in'),
  );
  show(h('h1', {}, 'Log in'), form);
}

function bar(used, total) {
  const pct = total ? Math.min(100, Math.round((100 * used) / total)) : 0;
  return h('span', { class: 'bar', title: `${used} of ${total}` }, h('span', { style: `width:${pct}%` }));
}

async function hostsView() {
  const hosts = await api('GET', '/v1/hosts');
  show(
    h('h1', {}, 'Hosts'),
    h(
      'table',
      {},
      h(
        'tr',
        {},
        ['host', 'state', 'maintenance', 'memory', 'vCPUs', 'patch level'].map((c) => h('th', {}, c)),
      ),
      hosts.map((x) =>
        h(
          'tr',
          { 'data-host': x.hostId },
          h('td', {}, x.hostId),
          h('td', {}, x.state),
          h('td', {}, x.maintenance),
          h(
            'td',
            {},
            bar(x.used.memoryMiB, x.allocatable.memoryMiB),
            ` ${x.used.memoryMiB} / ${x.allocatable.memoryMiB} MiB`,
          ),
          h('td', {}, bar(x.used.vcpus, x.allocatable.vcpus), ` ${x.used.vcpus} / ${x.allocatable.vcpus}`),
          h('td', {}, x.patchLevel),
        ),
      ),
    ),
  );
}

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

async function vmsView() {
  const vms = await api('GET', '/v1/vms');
  show(
    h('h1', {}, 'VMs'),
    createForm() ?? '',
    h(
      'table',
      {},
      h(
        'tr',
        {},
        ['VM', 'project', 'state', 'host', 'addresses', 'memory'].map((c) => h('th', {}, c)),
      ),
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

async function vmView(vmId) {
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

async function route() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const hash = location.hash || '#/vms';
  if (!token || hash === '#/login') return loginView();
  me ??= await api('GET', '/v1/whoami');
  document.getElementById('who').textContent = me.actor;
  document.getElementById('logout').hidden = false;
  const vmMatch = /^#\/vms\/(.+)$/.exec(hash);
  try {
    if (vmMatch) return await vmView(decodeURIComponent(vmMatch[1]));
    following?.abort();
    if (hash === '#/hosts') return await hostsView();
    return await vmsView();
  } catch (err) {
    show(failure(err));
  }
}

document.getElementById('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  me = undefined;
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
route();
