import { api, h, show, table } from './ui.js';

function bar(used, total) {
  const pct = total ? Math.min(100, Math.round((100 * used) / total)) : 0;
  return h('span', { class: 'bar', title: `${used} of ${total}` }, h('span', { style: `width:${pct}%` }));
}

/** Hosts with their capacity bars, liveness and maintenance. */
export async function hostsView() {
  const hosts = await api('GET', '/v1/hosts');
  show(
    h('h1', {}, 'Hosts'),
    table(
      ['host', 'state', 'liveness', 'maintenance', 'memory', 'vCPUs', 'patch level'],
      hosts.map((x) =>
        h(
          'tr',
          { 'data-host': x.hostId },
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
        ),
      ),
    ),
  );
}
