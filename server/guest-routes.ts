import { z } from 'zod';
import { InvalidStateError, parseInput } from '../domain/errors';
import { consoleBytesSchema } from '../domain/guest';
import { vmOperations } from '../client/vm-operations';
import { operableVm } from './vm-access';
import { route, type ApiDeps, type ApiRoute } from './route';

// The log's own bound (domain/guest.ts), from a query string; absent: vmOperations' default.
const consoleQuery = z.strictObject({ bytes: z.coerce.number().pipe(consoleBytesSchema).optional() });

/**
 * What a VM's guest shows: the end of its serial console log and its screen, read on its host
 * through the controller. Both can hold what the guest prints (keys, passwords typed at a
 * prompt), so they need an operator in the VM's project, as a console would.
 */
export function guestRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/vms/:vmId/console',
      summary: "The end of a VM's serial console log, ?bytes= up to 65536 (operator)",
      status: 200,
      async handle({ actor, params, client, req }) {
        const vm = await operableVm(deps, actor, params);
        if (!vm.host) throw new InvalidStateError(`vm ${vm._id} has no host yet`);
        const { bytes } = parseInput(consoleQuery, req.query, 'query');
        return {
          vmId: vm._id,
          host: vm.host,
          text: await vmOperations(client, deps.config).consoleLog(vm._id, vm.host, bytes),
        };
      },
    }),
    route({
      method: 'GET',
      url: '/v1/vms/:vmId/screenshot',
      summary: "A running VM's screen as a PNG (operator)",
      status: 200,
      async handle({ actor, params, client, reply }) {
        const vm = await operableVm(deps, actor, params);
        if (vm.state !== 'running' || !vm.host)
          throw new InvalidStateError(`vm ${vm._id} is ${vm.state}: only a running VM has a screen`);
        const shot = await vmOperations(client, deps.config).screenshot(vm._id, vm.host);
        void reply.type('image/png');
        return shot.png;
      },
    }),
  ];
}
