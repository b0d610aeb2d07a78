// Every workflow the controller worker runs; the bundler starts here.
export { checkHost } from './check-host';
export { createVm } from './create-vm';
export { startVm } from './start-vm';
export { stopVm } from './stop-vm';
export { deleteVm } from './delete-vm';
export { liveMigration } from './live-migration';
export { backupVm } from './backup-vm';
export { restoreVm } from './restore-vm';
export { verifyBackup } from './verify-backup';
export { pruneVmBackups } from './prune-vm-backups';
export { scheduledBackup } from './scheduled-backup';
export { enterMaintenance } from './enter-maintenance';
export { exitMaintenance } from './exit-maintenance';
export { patchHost } from './patch-host';
export { rollingPatch } from './rolling-patch';
export { reconcileHost, reconcileFleet, fixDrift } from './reconcile';
export { haRestart, haRestartVm } from './ha-restart';
export { setVmHa } from './set-vm-ha';
