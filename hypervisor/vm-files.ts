import path from 'node:path';
import { ValidationError } from '../domain/errors';
import { idSchema } from '../domain/ids';

/**
 * A VM's files on the shared datastore, named from its id alone. Host activities never take a
 * path from a request: any Temporal client can schedule them, so a path would let it make a
 * host read, write or delete anything. An id is a DNS label, which keeps every name inside.
 */
export function vmFiles(datastoreDir: string, vmId: string) {
  const id = idSchema.safeParse(vmId);
  if (!id.success) throw new ValidationError('vmId', `"${String(vmId)}" ${id.error.issues[0].message}`);
  return {
    disk: path.join(datastoreDir, `${vmId}.qcow2`),
    /** The NoCloud seed (cidata), rebuilt when its settings change. */
    seed: path.join(datastoreDir, `${vmId}.seed.iso`),
    /** The UEFI variable store of a uefi VM. */
    vars: path.join(datastoreDir, `${vmId}.vars.fd`),
    /** Data disk `index` (1 is the guest's vdb): empty qcow2 disks made at create time. */
    dataDisk: (index: number) => path.join(datastoreDir, `${vmId}.data${dataDiskIndex(index)}.qcow2`),
  };
}

/** A VM has at most this many data disks (vdb … vdi). */
export const MAX_DATA_DISKS = 8;

function dataDiskIndex(index: number): number {
  if (!Number.isInteger(index) || index < 1 || index > MAX_DATA_DISKS)
    throw new ValidationError('dataDisks', `disk index ${String(index)} is not 1 to ${MAX_DATA_DISKS}`);
  return index;
}

/** The indices 1…count of a VM's data disks, refusing a count no VM can have. */
export function dataDiskIndices(count: number): number[] {
  if (count === 0) return [];
  dataDiskIndex(count);
  return Array.from({ length: count }, (_, i) => i + 1);
}

/**
 * The VM a datastore file belongs to (`<vm>.qcow2`, `<vm>.data<i>.qcow2`), or undefined for a
 * file virtflow did not name: the reconciler reports disks nobody owns by this.
 */
export function vmIdOfDiskFile(file: string): string | undefined {
  return /^([a-z0-9-]+)(\.data\d+)?\.qcow2$/.exec(path.basename(file))?.[1];
}

/**
 * A backup's file for data disk `index`, beside the root disk's: `<backup>.data<i>.qcow2`.
 * An incremental's data file rests on the same index of its parent backup.
 */
export function dataBackupFile(backupFile: string, index: number): string {
  return `${backupFile.replace(/\.qcow2$/, '')}.data${dataDiskIndex(index)}.qcow2`;
}

/**
 * `file` if it lies inside `dir` (after resolving `..`), else a ValidationError naming the
 * field: for the paths a host must take from a request (backups, images), which the
 * controller names from its catalogue.
 */
export function insideDir(dir: string, file: string, field: string): string {
  const resolved = path.resolve(String(file));
  const rel = path.relative(path.resolve(dir), resolved);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel))
    throw new ValidationError(field, `${String(file)} is outside ${dir}`);
  return resolved;
}
