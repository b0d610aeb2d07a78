import { allowed, roleIn, FLEET } from '../domain/access';
import { networkSpecSchema, type NetworkSpecInput } from '../domain/network';
import { createNetwork, deleteNetwork, listNetworks, networkWithAddresses } from '../inventory/networks';
import { authorize } from './auth';
import { pathId, route, type ApiDeps, type ApiRoute } from './route';
import { projectOf } from './vm-access';

/**
 * Networks are the fleet's, as hosts are: any grant reads them (a VM's NICs name them), and only a
 * fleet admin records or deletes one. The addresses a network hands out name only the VMs the
 * caller may see.
 */
export function networkRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/networks',
      summary: 'Networks with their subnet, pool and kind (any grant)',
      status: 200,
      async handle({ actor }) {
        authorize(actor, 'read');
        return listNetworks(deps.inv);
      },
    }),
    route({
      method: 'GET',
      url: '/v1/networks/:name',
      summary: "One network and the addresses its VMs hold (any grant; other projects' VMs unnamed)",
      status: 200,
      async handle({ actor, params }) {
        authorize(actor, 'read');
        const fleet = roleIn(actor, FLEET) !== undefined;
        return networkWithAddresses(
          deps.inv,
          pathId(params, 'name'),
          fleet ? undefined : (vm) => allowed(actor, 'read', projectOf(vm)),
        );
      },
    }),
    route<NetworkSpecInput>({
      method: 'POST',
      url: '/v1/networks',
      summary: 'Record a network: a bridge inside each host, or a bridge or VLAN on an uplink (fleet admin)',
      body: networkSpecSchema.strict(),
      status: 201,
      async handle({ actor, body }) {
        authorize(actor, 'administer');
        return createNetwork(deps.inv, body);
      },
    }),
    route({
      method: 'DELETE',
      url: '/v1/networks/:name',
      summary: 'Delete a network no VM uses (fleet admin)',
      status: 200,
      async handle({ actor, params }) {
        authorize(actor, 'administer');
        const name = pathId(params, 'name');
        await deleteNetwork(deps.inv, name);
        return { name, deleted: true };
      },
    }),
  ];
}
