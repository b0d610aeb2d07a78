import fs from 'node:fs';
import path from 'node:path';
import { MongoServerError } from 'mongodb';
import { ValidationError, VirtflowError } from '../domain/errors';
import { imageInfo, sha256File } from '../hypervisor/qemu-img';
import type { Inventory } from './db';
import { imageSchema, type ImageDoc } from './schemas';

/**
 * Imports a local image file into the repository: the format comes from `qemu-img info`, the
 * file is stored under its SHA-256 (so equal content is stored once), and the catalogue
 * records name, format, sizes and checksum. Importing the same content under the same name
 * again is a no-op; reusing a name for other content is refused.
 */
export async function importImage(
  inv: Inventory,
  repoDir: string,
  req: { name: string; file: string },
): Promise<ImageDoc> {
  if (!fs.existsSync(req.file) || !fs.statSync(req.file).isFile()) {
    throw new ValidationError('file', `"${req.file}" is not a readable file`);
  }
  const info = await imageInfo(req.file);
  if (info.format !== 'qcow2' && info.format !== 'raw') {
    throw new ValidationError('file', `format is ${info.format}; only qcow2 and raw images are accepted`);
  }
  if (info.backingFile) {
    throw new ValidationError('file', `has a backing file (${info.backingFile}); import a standalone image`);
  }
  const sha256 = await sha256File(req.file);
  const existing = await inv.images.findOne({ _id: req.name });
  if (existing) {
    if (existing.sha256 === sha256) return existing;
    throw new ValidationError(
      'name',
      `image "${req.name}" already exists with other content (${existing.sha256})`,
    );
  }

  fs.mkdirSync(repoDir, { recursive: true });
  const stored = path.join(repoDir, `${sha256}.${info.format}`);
  if (!fs.existsSync(stored)) {
    // Copy then rename, so a crash never leaves a half-written file under a valid checksum name.
    const partial = `${stored}.partial-${process.pid}`;
    await fs.promises.copyFile(req.file, partial);
    if ((await sha256File(partial)) !== sha256) {
      fs.rmSync(partial, { force: true });
      throw new VirtflowError('ImageChecksumError', `image file ${req.file} changed while it was imported`);
    }
    fs.renameSync(partial, stored);
    fs.chmodSync(stored, 0o444);
  }
  const now = new Date();
  const doc = imageSchema.parse({
    _id: req.name,
    createdAt: now,
    updatedAt: now,
    revision: 1,
    format: info.format,
    sha256,
    virtualSizeBytes: info.virtualSizeBytes,
    actualSizeBytes: fs.statSync(stored).size,
    path: stored,
    source: path.resolve(req.file),
  });
  try {
    await inv.images.insertOne(doc);
    return doc;
  } catch (err) {
    // A concurrent import of the same name: the unique _id decided; agree if it is the same content.
    if (err instanceof MongoServerError && err.code === 11000) {
      const winner = await inv.images.findOne({ _id: req.name });
      if (winner?.sha256 === sha256) return winner;
      throw new ValidationError('name', `image "${req.name}" was just imported with other content`);
    }
    throw err;
  }
}

export function listImages(inv: Inventory): Promise<ImageDoc[]> {
  return inv.images.find({}).sort({ _id: 1 }).toArray();
}
