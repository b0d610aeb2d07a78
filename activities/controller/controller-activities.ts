import type { Config } from '../../domain/config';
import { createMetricsRetentionActivities } from './metrics-retention-activities';
import type { Inventory } from '../../inventory/db';
import type { Client } from '@temporalio/client';
import { createBackupInventoryActivities } from './backup-inventory-activities';
import { createBackupPolicyActivities } from './backup-policy-activities';
import { createHaActivities } from './ha-activities';
import { createMaintenanceActivities } from './maintenance-activities';
import { createReconcileActivities } from './reconcile-activities';
import { createRolloutActivities } from './rollout-activities';
import { createInventoryActivities } from './inventory-activities';
import { createMigrationInventoryActivities } from './migration-inventory-activities';
import { withOperatorErrors } from '../operator-errors';
import { createVmInventoryActivities } from './vm-inventory-activities';
import { createNicInventoryActivities } from './nic-inventory-activities';

/** Every activity the controller worker serves: inventory and pure logic, no hypervisor. */
export function createControllerActivities(inv: Inventory, config: Config, client: () => Promise<Client>) {
  return withOperatorErrors({
    ...createInventoryActivities(inv),
    ...createVmInventoryActivities(inv, config),
    ...createNicInventoryActivities(inv),
    ...createMigrationInventoryActivities(inv),
    ...createBackupInventoryActivities(inv, config),
    ...createBackupPolicyActivities(inv, client),
    ...createMaintenanceActivities(inv),
    ...createRolloutActivities(inv, client),
    ...createReconcileActivities(inv, client),
    ...createHaActivities(inv, config),
    ...createMetricsRetentionActivities(inv, config),
  });
}

export type ControllerActivities = ReturnType<typeof createControllerActivities>;
