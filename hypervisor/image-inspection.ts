import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { ImageSourceFormat } from '../domain/images';

const run = promisify(execFile);

/** An image the repository refuses, with the one-line reason an operator reads. */
export class ImageRefusedError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ImageRefusedError';
  }
}

/**
 * Limits for every qemu-img run on an untrusted image: a crafted header can make qemu-img
 * allocate or loop without end, so each run gets an address-space cap, a CPU-time cap and a
 * wall-clock timeout. `prlimit` applies them to the child only.
 */
export interface QemuImgLimits {
  memoryBytes: number;
  cpuSeconds: number;
  timeoutMs: number;
}

export const INFO_LIMITS: QemuImgLimits = { memoryBytes: 1 << 30, cpuSeconds: 30, timeoutMs: 60_000 };

export async function qemuImgLimited(args: string[], limits: QemuImgLimits): Promise<string> {
  try {
    const { stdout } = await run(
      'prlimit',
      [`--as=${limits.memoryBytes}`, `--cpu=${limits.cpuSeconds}`, '--', 'qemu-img', ...args],
      { timeout: limits.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
    );
    return stdout;
  } catch (err) {
    const e = err as { killed?: boolean; signal?: string; stderr?: string; message: string };
    if (e.killed || e.signal)
      throw new ImageRefusedError(`qemu-img ${args[0]} exceeded its limits (${e.signal ?? 'timeout'})`);
    throw new ImageRefusedError(
      `qemu-img ${args[0]} rejects it: ${(e.stderr ?? e.message).trim().split('\n').pop()}`,
    );
  }
}

/**
 * The format a file's first bytes declare, as qemu's own probes read them, but decided here so
 * that qemu-img is only ever run with an explicit format. Anything unrecognised is raw.
 */
export function detectFormat(file: string): ImageSourceFormat {
  const head = Buffer.alloc(512);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (head.subarray(0, 4).toString('latin1') === 'QFI\xfb') return 'qcow2';
  if (head.subarray(0, 4).toString('latin1') === 'KDMV') return 'vmdk';
  if (head.subarray(0, 21).toString('latin1') === '# Disk DescriptorFile') return 'vmdk';
  if (head.subarray(0, 8).toString('latin1') === 'vhdxfile') return 'vhdx';
  if (head.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  return 'raw';
}

export interface InspectedImage {
  format: ImageSourceFormat;
  virtualSizeBytes: number;
}

/**
 * Every field of `qemu-img info` that names another file. An image that refers to one would
 * make the host open that file when a VM boots (a backing file, an external data file, a vmdk
 * extent elsewhere): the repository stores only self-contained images.
 */
function externalReferences(info: Record<string, unknown>, self: string): string[] {
  const found: string[] = [];
  if (info['backing-filename']) found.push(`backing file ${String(info['backing-filename'])}`);
  if (info['full-backing-filename']) found.push(`backing file ${String(info['full-backing-filename'])}`);
  const specific = (info['format-specific'] as { data?: Record<string, unknown> } | undefined)?.data ?? {};
  if (specific['data-file']) found.push(`external data file ${String(specific['data-file'])}`);
  for (const extent of (specific.extents as { filename?: string }[] | undefined) ?? []) {
    if (extent.filename && extent.filename !== self) found.push(`extent file ${extent.filename}`);
  }
  for (const child of (info.children as { info?: { filename?: string } }[] | undefined) ?? []) {
    const name = child.info?.filename;
    if (name && name !== self) found.push(`child file ${name}`);
  }
  return found;
}

/**
 * Inspects an image file before anything is stored: it must be a regular file (not a symlink,
 * device or FIFO), be of the format stated (or detected), refer to no other file, and be no
 * larger than `maxVirtualSizeBytes`. Run on the very copy that will be converted and stored, so
 * nothing can change between the check and its use.
 */
export async function inspectImage(
  file: string,
  opts: { format?: ImageSourceFormat; maxVirtualSizeBytes: number },
): Promise<InspectedImage> {
  const st = fs.lstatSync(file);
  if (st.isSymbolicLink()) throw new ImageRefusedError('is a symbolic link; import the file it points to');
  if (!st.isFile()) throw new ImageRefusedError('is not a regular file (a device, FIFO or directory)');
  if (st.size === 0) throw new ImageRefusedError('is empty');
  const detected = detectFormat(file);
  const format = opts.format ?? detected;
  if (opts.format && opts.format !== detected)
    throw new ImageRefusedError(`is stated to be ${opts.format} but its header says ${detected}`);
  const info = JSON.parse(
    await qemuImgLimited(['info', '-f', format, '--output=json', file], INFO_LIMITS),
  ) as Record<string, unknown>;
  const refs = externalReferences(info, file);
  if (refs.length > 0)
    throw new ImageRefusedError(`refers to another file (${refs.join(', ')}); import a self-contained image`);
  const virtualSizeBytes = Number(info['virtual-size']);
  if (!Number.isFinite(virtualSizeBytes) || virtualSizeBytes <= 0)
    throw new ImageRefusedError('has no virtual size: it is not a disk image');
  if (virtualSizeBytes > opts.maxVirtualSizeBytes)
    throw new ImageRefusedError(
      `virtual size ${virtualSizeBytes} bytes is above the repository's cap of ${opts.maxVirtualSizeBytes} bytes`,
    );
  if (format === 'raw') assertBootableRaw(file, st.size);
  return { format, virtualSizeBytes };
}

/** A raw file is any bytes: accept it only when it looks like a disk (whole sectors, MBR/GPT). */
function assertBootableRaw(file: string, size: number): void {
  if (size % 512 !== 0)
    throw new ImageRefusedError(
      `is not a disk image: ${size} bytes is not a whole number of 512-byte sectors`,
    );
  const mbr = Buffer.alloc(512);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, mbr, 0, 512, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa)
    throw new ImageRefusedError(
      'is not a disk image: no partition table (a raw image starts with an MBR or a GPT)',
    );
}

/** Converts to a standalone qcow2 with the input format given explicitly, under limits. */
export async function convertToQcow2(
  source: string,
  format: ImageSourceFormat,
  target: string,
): Promise<void> {
  await qemuImgLimited(['convert', '-q', '-f', format, '-O', 'qcow2', source, target], {
    memoryBytes: 2 << 30,
    cpuSeconds: 3600,
    timeoutMs: 2 * 3600_000,
  });
}
