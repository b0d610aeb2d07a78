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
  };
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
