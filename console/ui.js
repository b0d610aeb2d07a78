// What every page of virtflow's web console shares: building elements, calling the API, and
// the role rule that decides which actions a page offers. The token lives in sessionStorage and
// goes in the Authorization header (never a cookie, so no other site can make the browser act
// for its user); pages are built with DOM calls, never HTML strings, so nothing the inventory
// holds is ever run as markup.

export const view = document.getElementById('view');
export const TOKEN_KEY = 'virtflow-token';
/** Who is logged in: `{ actor, grants }` from /v1/whoami. */
export const session = { me: undefined };

/** Builds an element: h('td', { class: 'x' }, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat())
    if (c !== undefined && c !== null) el.append(c instanceof Node ? c : String(c));
  return el;
}

export class ApiError extends Error {}

/** The API's answer to one request; its refusal as an ApiError with the API's message. */
export async function api(method, path, body) {
  return (await exchange(method, path, body)).answer;
}

/** One page of a paged list, and the path of the next page if the API names one. */
export async function apiPage(path) {
  const { answer, res } = await exchange('GET', path);
  const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];
  return { items: answer, next };
}

/** A request with the token; a 401 sends the operator back to log in. */
export async function authorized(path, init = {}) {
  const res = await fetch(path, {
    ...init,
    headers: { ...init.headers, authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}` },
  });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    location.hash = '#/login';
    throw new ApiError('the token is not valid');
  }
  return res;
}

async function exchange(method, path, body) {
  const res = await authorized(path, {
    method,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const answer = res.status === 204 ? undefined : await res.json();
  if (!res.ok) throw new ApiError(answer?.message ?? `HTTP ${res.status}`);
  return { answer, res };
}

/** The role rule of the API (domain/access.ts), so the console offers only what is allowed. */
const rank = { viewer: 0, operator: 1, admin: 2 };
const holds = (project, role) =>
  session.me.grants.some((g) => (g.project === project || g.project === '*') && rank[g.role] >= rank[role]);
export const canOperate = (project) => holds(project, 'operator');
/** Hosts, rollouts and drift fixes are the fleet admin's. */
export const canAdminister = () => holds('*', 'admin');
/** Policies and drift span projects: a fleet grant reads them. */
export const hasFleetGrant = () => session.me.grants.some((g) => g.project === '*');
export const operableProjects = () =>
  session.me.grants
    .filter((g) => rank[g.role] >= rank.operator)
    .map((g) => (g.project === '*' ? 'default' : g.project));

/** Shows a page: its nodes, and the nodes of any list among them, in order. */
export function show(...nodes) {
  view.replaceChildren(...nodes.flat());
}

export function failure(err) {
  return h('p', { class: 'error', role: 'alert' }, err.message);
}

/** Runs an action; its error is shown above the page, the page reloaded after it. */
export async function act(fn) {
  try {
    await fn();
  } catch (err) {
    view.prepend(failure(err));
  }
}

/** A table: its header row and one row per item. */
export function table(columns, rows) {
  return h(
    'table',
    {},
    h(
      'tr',
      {},
      columns.map((c) => h('th', {}, c)),
    ),
    rows,
  );
}

/** A link to a run in the Temporal UI. */
export const runLink = (url, text) => h('a', { href: url, target: '_blank', rel: 'noopener' }, text);

/** A date as the operator's browser shows it, or nothing. */
export const when = (d) => (d ? new Date(d).toLocaleString() : '');

let pageTimer;
/** Runs `fn` every `ms` while this page is shown (the router stops it when the page changes). */
export function refreshEvery(ms, fn) {
  clearInterval(pageTimer);
  pageTimer = setInterval(fn, ms);
}
export const stopRefreshing = () => clearInterval(pageTimer);
