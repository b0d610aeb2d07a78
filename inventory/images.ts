import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { MongoServerError } from 'mongodb';
import { parseInput, ValidationError } from '../domain/errors';
import { importImageRequestSchema, type ImportImageRequest, type ImportImageSpec } from '../domain/requests';
import { convertToQcow2, ImageRefusedError, inspectImage } from '../hypervisor/image-inspection';
import { sha256File } from '../hypervisor/qemu-img';
import type { Inventory } from './db';
import { imageSchema, type ImageDoc } from './schemas';

/** Called while the source is copied in, for a progress bar. */
export type ImportProgress = (copiedBytes: number, totalBytes: number) => void;

/**
 * Streams the source into a private staging file (nobody else can swap it afterwards) and
 * hashes it on the way. Refuses what is not a regular file before reading a byte.
 */
async function stage(source: string, staged: string, onProgress?: ImportProgress): Promise<string> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(source);
  } catch {
    throw new ValidationError('file', `"${source}" does not exist`);
  }
  if (st.isSymbolicLink())
    throw new ValidationError('file', `"${source}" is a symbolic link; import the file it points to`);
  if (!st.isFile())
    throw new ValidationError('file', `"${source}" is not a regular file (a device, FIFO or directory)`);
  // O_NOFOLLOW: a symlink swapped in after the lstat above is refused by the kernel.
  const fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  return stageStream(fs.createReadStream(source, { fd }), staged, {
    field: 'file',
    totalBytes: st.size,
    onProgress,
  });
}

/**
 * Streams `input` into the private staging file, hashing it on the way; past `maxBytes` the
 * stream is refused (an upload's size is only known once it has arrived). A refusal names
 * `field`: where the bytes came from (a file, an upload's body).
 */
async function stageStream(
  input: Readable,
  staged: string,
  opts: { field: string; totalBytes?: number; maxBytes?: number; onProgress?: ImportProgress },
): Promise<string> {
  const hash = createHash('sha256');
  let copied = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      copied += chunk.length;
      if (opts.maxBytes !== undefined && copied > opts.maxBytes)
        return done(new ValidationError(opts.field, `the image is larger than ${opts.maxBytes} bytes`));
      hash.update(chunk);
      opts.onProgress?.(copied, opts.totalBytes ?? copied);
      done(null, chunk);
    },
  });
  await pipeline(input, meter, fs.createWriteStream(staged, { flags: 'wx', mode: 0o600 }));
  if (copied === 0) throw new ValidationError(opts.field, 'the image is empty');
  return hash.digest('hex');
}

/**
 * Imports an image file into the repository: copied into a private staging file, inspected
 * there (format stated or detected, no references to other files, a capped virtual size,
 * under CPU/memory limits), converted to a standalone qcow2 with its input format explicit,
 * and stored under the SHA-256 of that qcow2. Nothing is stored unless every check passed.
 * Importing the same content under the same name again is a no-op; reusing a name is refused.
 */
export function importImage(
  inv: Inventory,
  repoDir: string,
  request: ImportImageRequest,
  onProgress?: ImportProgress,
): Promise<ImageDoc> {
  const req = parseInput(importImageRequestSchema, request, '');
  const origin = { field: 'file', shown: req.file, source: path.resolve(req.file) };
  return importStaged(inv, repoDir, req, origin, (staged) => stage(req.file, staged, onProgress));
}

/**
 * Imports an image sent as a stream (an upload through the API) exactly as a file is imported;
 * `source` says where it came from, as a file's path does. At most `maxBytes` are taken.
 */
export function importImageStream(
  inv: Inventory,
  repoDir: string,
  request: Omit<ImportImageRequest, 'file'>,
  source: string,
  input: Readable,
  maxBytes: number,
): Promise<ImageDoc> {
  const req = parseInput(importImageRequestSchema.omit({ file: true }), request, '');
  const origin = { field: 'body', shown: source, source };
  return importStaged(inv, repoDir, req, origin, (staged) =>
    stageStream(input, staged, { field: 'body', maxBytes }),
  );
}

/** The import after the source is staged: inspect, convert, check again, store, record. */
async function importStaged(
  inv: Inventory,
  repoDir: string,
  req: Omit<ImportImageSpec, 'file'>,
  /** Where the bytes came from: the field a refusal names, the name it shows, what is recorded. */
  origin: { field: string; shown: string; source: string },
  stageInto: (staged: string) => Promise<string>,
): Promise<ImageDoc> {
  fs.mkdirSync(repoDir, { recursive: true });
  const work = fs.mkdtempSync(path.join(repoDir, '.import-'));
  try {
    const staged = path.join(work, 'source');
    const sourceSha256 = await stageInto(staged);
    // The same file under the same name again: nothing to inspect or convert.
    const existing = await inv.images.findOne({ _id: req.name });
    if (existing && existing.project !== req.project)
      throw new ValidationError('name', `an image named "${req.name}" exists in ${ownerOf(existing)}`);
    if (existing?.sourceSha256 === sourceSha256) return existing;
    let inspected;
    try {
      inspected = await inspectImage(staged, {
        format: req.format,
        maxVirtualSizeBytes: req.maxVirtualSizeBytes,
      });
    } catch (err) {
      if (err instanceof ImageRefusedError)
        throw new ValidationError(origin.field, `"${origin.shown}" ${err.message}`);
      throw err;
    }
    const converted = path.join(work, 'image.qcow2');
    await convertToQcow2(staged, inspected.format, converted);
    // The output is ours, but check it as any other image: a converter bug must not slip through.
    await inspectImage(converted, { format: 'qcow2', maxVirtualSizeBytes: req.maxVirtualSizeBytes });
    const sha256 = await sha256File(converted);

    if (existing) {
      if (existing.sha256 === sha256) return existing;
      throw new ValidationError(
        'name',
        `image "${req.name}" already exists with other content (${existing.sha256})`,
      );
    }
    const stored = path.join(repoDir, `${sha256}.qcow2`);
    if (!fs.existsSync(stored)) {
      fs.renameSync(converted, stored);
      fs.chmodSync(stored, 0o444);
    }
    const now = new Date();
    const doc = imageSchema.parse({
      _id: req.name,
      createdAt: now,
      updatedAt: now,
      revision: 1,
      format: 'qcow2',
      sourceFormat: inspected.format,
      firmware: req.firmware,
      guestAgent: req.guestAgent,
      osFamily: req.osFamily,
      project: req.project,
      sha256,
      sourceSha256,
      virtualSizeBytes: inspected.virtualSizeBytes,
      actualSizeBytes: fs.statSync(stored).size,
      sourceSizeBytes: fs.statSync(staged).size,
      path: stored,
      source: origin.source,
    });
    return await insertImage(inv, doc);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function insertImage(inv: Inventory, doc: ImageDoc): Promise<ImageDoc> {
  try {
    await inv.images.insertOne(doc);
    return doc;
  } catch (err) {
    // A concurrent import of the same name: the unique _id decided; agree if it is the same content.
    if (err instanceof MongoServerError && err.code === 11000) {
      const winner = await inv.images.findOne({ _id: doc._id });
      if (winner?.sha256 === doc.sha256) return winner;
      throw new ValidationError('name', `image "${doc._id}" was just imported with other content`);
    }
    throw err;
  }
}

/** Whose an image is, as a refusal names it. */
const ownerOf = (image: Pick<ImageDoc, 'project'>) =>
  image.project ? `project ${image.project}` : 'the fleet';

/**
 * The image a VM of `project` is made from: a fleet image, or one of its own project's. Any other
 * is refused by field, before anything is written.
 */
export async function imageFor(inv: Inventory, name: string, project: string): Promise<ImageDoc> {
  const image = await inv.images.findOne({ _id: name });
  if (!image) throw new ValidationError('image', `no image named "${name}" (see \`virtflow image list\`)`);
  if (image.project && image.project !== project)
    throw new ValidationError('image', `image ${name} belongs to project ${image.project}, not ${project}`);
  return image;
}

export function listImages(inv: Inventory): Promise<ImageDoc[]> {
  return inv.images.find({}).sort({ _id: 1 }).toArray();
}
