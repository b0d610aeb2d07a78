import { allowed, DEFAULT_PROJECT, type Actor } from '../domain/access';
import { NotFoundError } from '../domain/errors';
import type { VmDoc } from '../inventory/schemas';
import { authorize } from './auth';
import { pathId, type ApiDeps } from './route';

/** A VM's project (VMs created before projects existed are in the default one). */
export const projectOf = (vm: Pick<VmDoc, 'project'>) => vm.project ?? DEFAULT_PROJECT;

/**
 * The VM a caller may read, or 404: a VM of a project the caller has no grant in is answered as
 * if it did not exist, so ids of other projects are not probed.
 */
export async function readableVm(deps: ApiDeps, actor: Actor, vmId: string): Promise<VmDoc> {
  const vm = await deps.inv.vms.findOne({ _id: vmId });
  if (!vm || !allowed(actor, 'read', projectOf(vm))) throw new NotFoundError('vm', vmId);
  return vm;
}

/** A VM the caller may operate (403 with only a viewer's grant in its project). */
export async function operableVm(
  deps: ApiDeps,
  actor: Actor,
  params: Record<string, string>,
): Promise<VmDoc> {
  const vm = await readableVm(deps, actor, pathId(params, 'vmId'));
  authorize(actor, 'operate', projectOf(vm));
  return vm;
}
