// virtflow's web console: plain ES modules, no build step. app.js logs in and routes; each page
// is its own module, and ui.js holds what they share.
import { backupsView } from './backups.js';
import { driftView } from './drift.js';
import { hostsView } from './hosts.js';
import { rolloutsView, rolloutView } from './rollouts.js';
import { api, failure, h, session, show, stopRefreshing, TOKEN_KEY } from './ui.js';
import { stopFollowing, vmsView, vmView } from './vms.js';

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
          session.me = await api('GET', '/v1/whoami');
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

async function route() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const hash = location.hash || '#/vms';
  if (!token || hash === '#/login') return loginView();
  session.me ??= await api('GET', '/v1/whoami');
  document.getElementById('who').textContent = session.me.actor;
  document.getElementById('logout').hidden = false;
  const vmMatch = /^#\/vms\/(.+)$/.exec(hash);
  stopRefreshing();
  try {
    if (vmMatch) return await vmView(decodeURIComponent(vmMatch[1]));
    stopFollowing();
    if (hash === '#/hosts') return await hostsView();
    const rolloutMatch = /^#\/rollouts\/(.+)$/.exec(hash);
    if (rolloutMatch) return await rolloutView(decodeURIComponent(rolloutMatch[1]));
    if (hash === '#/rollouts') return await rolloutsView();
    if (hash === '#/backups') return await backupsView();
    if (hash === '#/drift') return await driftView();
    const after = /^#\/vms\?after=(.+)$/.exec(hash)?.[1];
    return await vmsView(after && decodeURIComponent(after));
  } catch (err) {
    show(failure(err));
  }
}

document.getElementById('logout').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  session.me = undefined;
  location.hash = '#/login';
});
window.addEventListener('hashchange', route);
route();
