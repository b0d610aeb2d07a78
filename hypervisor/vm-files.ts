import path from 'node:path';
import { ValidationError } from '../domain/errors';
import { MAX_DATA_DISKS } from '../domain/guest';
import { idSchema } from '../domain/ids';

/**
 * A VM's files on the shared datastore, named from its id alone. Host activities never take a
 * path from a request: any Temporal client can schedule them, so a path would let it make a
 * host read, write or delete anything. An id is a DNS label, which keeps every name inside.
 */
export function vmFiles(datastoreDir: string, vmId: string) {
  const id = idSchema.safeParse(vmId);
  if (!id.success) throw new ValidationError('vmId', `"${String(vmId)}" ${id.error.issues[0].message}`);
  const disk = path.join(datastoreDir, `${vmId}.qcow2`);
  return {
    /** The root disk (the guest's vda). */
    disk,
    /** Disk `index`: 0 is the root disk, 1 the first data disk (vdb), up to MAX_DATA_DISKS. */
    diskOf: (index: number) => diskFileOf(disk, index),
    /** Every data disk the VM could have, whether or not it exists: for deleting them all. */
    allDataDisks: () => dataDiskIndices(MAX_DATA_DISKS).map((i) => diskFileOf(disk, i)),
    /** The NoCloud seed (cidata), rebuilt when its settings change. */
    seed: path.join(datastoreDir, `${vmId}.seed.iso`),
    /** The UEFI variable store of a uefi VM. */
    vars: path.join(datastoreDir, `${vmId}.vars.fd`),
  };
}

/**
 * The file of disk `index` beside the root disk's file `rootFile`: the root itself for 0, else
 * `<root>.data<i>.qcow2`. A VM's data disks and a backup's copies of them are named alike, so
 * an incremental's data file rests on the same index of its parent backup.
 */
export function diskFileOf(rootFile: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > MAX_DATA_DISKS)
    throw new ValidationError('disk', `disk index ${String(index)} is not 0 to ${MAX_DATA_DISKS}`);
  return index === 0 ? rootFile : `${rootFile.replace(/\.qcow2$/, '')}.data${index}.qcow2`;
}

/** The indices 1…count of a VM's data disks, refusing a count no VM can have. */
export function dataDiskIndices(count: number): number[] {
  if (!Number.isInteger(count) || count < 0 || count > MAX_DATA_DISKS)
    throw new ValidationError('dataDisks', `${String(count)} data disks is not 0 to ${MAX_DATA_DISKS}`);
  return Array.from({ length: count }, (_, i) => i + 1);
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
