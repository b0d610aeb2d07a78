import type { SetHaRequest } from '../domain/ha';
import type { VmDoc } from '../inventory/schemas';
import { inventory } from './activity-proxies';
import { operatorFailure, reasonOf } from './failures';
import { trackOperation } from './observability';

/**
 * Turns HA protection of a VM on or off (`vm/<vmId>`): as the VM's own operation, so it never
 * races a migration or restart writing the same document.
 */
export async function setVmHa(req: SetHaRequest): Promise<VmDoc> {
  const op = trackOperation({ operation: 'set-ha', vm: req.vmId });
  try {
    const vm = await inventory.setVmHa(req);
    op.phase('done', vm.ha?.enabled ? `HA on, priority ${vm.ha.priority}` : 'HA off');
    return vm;
  } catch (err) {
    op.phase('rejected', reasonOf(err));
    throw operatorFailure(err);
  }
}
