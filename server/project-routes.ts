import { parseInput } from '../domain/errors';
import { quotaSchema, type Quota } from '../domain/quota';
import { idSchema } from '../domain/ids';
import { projectReport, setQuota } from '../inventory/quotas';
import { authorize } from './auth';
import { route, type ApiDeps, type ApiRoute } from './route';

/** A project's name from the path: a DNS label like every id. */
const projectParam = (params: Record<string, string>) => parseInput(idSchema, params.project, 'project');

/** A project's quota and what its VMs use; the quota is set by a fleet admin. */
export function projectRoutes(deps: ApiDeps): ApiRoute[] {
  return [
    route({
      method: 'GET',
      url: '/v1/projects/:project',
      summary: "A project's quota and usage (any grant in the project)",
      status: 200,
      async handle({ actor, params }) {
        const project = projectParam(params);
        authorize(actor, 'read', project);
        return projectReport(deps.inv, project);
      },
    }),
    route<Quota>({
      method: 'PUT',
      url: '/v1/projects/:project/quota',
      summary: "Set a project's quota: vms, vcpus, memoryMiB, diskGiB; an absent limit is none (fleet admin)",
      body: quotaSchema,
      status: 200,
      async handle({ actor, params, body }) {
        const project = projectParam(params);
        authorize(actor, 'administer');
        const { _id, updatedAt: _at, ...quota } = await setQuota(deps.inv, project, body);
        return { project: _id, quota };
      },
    }),
  ];
}
