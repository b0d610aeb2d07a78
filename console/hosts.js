import { act, api, canAdminister, h, refreshEvery, runLink, show, table } from './ui.js';

function bar(used, total) {
  const pct = total ? Math.min(100, Math.round((100 * used) / total)) : 0;
  return h('span', { class: 'bar', title: `${used} of ${total}` }, h('span', { style: `width:${pct}%` }));
}

/**
 * A fleet admin's control of a host's service: Enter maintenance (its VMs are live-migrated off)
 * when it is in service, Exit maintenance when it is out. While a change is under way the host
 * shows its phase and none is offered.
 */
function maintenanceControl(x) {
  if (!canAdminister()) return '';
  const button = (verb, label) =>
    h(
      'button',
      {
        'data-maintenance': verb,
        onclick: () =>
          act(async () => {
            await api('POST', `/v1/hosts/${encodeURIComponent(x.hostId)}/maintenance/${verb}`, {});
            await hostsView();
          }),
      },
      label,
    );
  if (x.maintenance === 'no') return button('enter', 'Enter maintenance');
  if (x.maintenance === 'yes' || x.maintenance === 'in-maintenance')
    return button('exit', 'Exit maintenance');
  return '';
}

/** The host's latest operation (maintenance, patch, fence), linked to its run. */
async function operationOf(hostId) {
  const op = await api('GET', `/v1/hosts/${encodeURIComponent(hostId)}/operation`).catch(() => undefined);
  return op ? [runLink(op.temporalUrl, `${op.type} ${op.status.toLowerCase()}`)] : '';
}

/**
 * Hosts with their capacity bars, liveness and maintenance, and for a fleet admin the control
 * to take one out of service and back; refreshed every two seconds while the page is shown.
 */
export async function hostsView() {
  const render = async () => {
    const hosts = await api('GET', '/v1/hosts');
    const operations = canAdminister() ? await Promise.all(hosts.map((x) => operationOf(x.hostId))) : [];
    show(
      h('h1', {}, 'Hosts'),
      table(
        ['host', 'state', 'liveness', 'maintenance', 'memory', 'vCPUs', 'patch level', 'last operation', ''],
        hosts.map((x, i) =>
          h(
            'tr',
            { 'data-host': x.hostId, 'data-maintenance': x.maintenance },
            h('td', {}, x.hostId),
            h('td', {}, x.state),
            h('td', { class: x.liveness === 'alive' ? '' : 'failing', title: x.needsOperator }, x.liveness),
            h('td', {}, x.maintenance),
            h(
              'td',
              {},
              bar(x.used.memoryMiB, x.allocatable.memoryMiB),
              ` ${x.used.memoryMiB} / ${x.allocatable.memoryMiB} MiB`,
            ),
            h('td', {}, bar(x.used.vcpus, x.allocatable.vcpus), ` ${x.used.vcpus} / ${x.allocatable.vcpus}`),
            h('td', {}, x.patchLevel),
            h('td', {}, operations[i] ?? ''),
            h('td', {}, maintenanceControl(x)),
          ),
        ),
      ),
    );
  };
  await render();
  refreshEvery(2000, () => render().catch(() => undefined));
}
