import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface ImageInfo {
  format: string;
  virtualSizeBytes: number;
  actualSizeBytes: number;
  backingFile?: string;
}

/**
 * `qemu-img info` of a file virtflow made itself (a VM's disk, a backup): the format is read
 * from the file. `-U` reads a disk a running guest holds locked. Imported files go through
 * hypervisor/image-inspection.ts instead.
 */
export async function imageInfo(file: string): Promise<ImageInfo> {
  const { stdout } = await run('qemu-img', ['info', '-U', '--output=json', file]);
  const info = JSON.parse(stdout) as {
    format: string;
    'virtual-size': number;
    'actual-size': number;
    'backing-filename'?: string;
  };
  return {
    format: info.format,
    virtualSizeBytes: info['virtual-size'],
    actualSizeBytes: info['actual-size'],
    backingFile: info['backing-filename'],
  };
}

/**
 * Whether a running QEMU anywhere holds `file` open: QEMU locks the images it uses (OFD locks,
 * which shared storage carries between hosts), and `qemu-img info` without `-U` fails on a
 * locked one. A host's own pidfiles only tell about that host's guests.
 */
export async function imageInUse(file: string): Promise<boolean> {
  try {
    await run('qemu-img', ['info', '--output=json', file]);
    return false;
  } catch (err) {
    if (/lock/i.test(String((err as { stderr?: string }).stderr ?? ''))) return true;
    throw err;
  }
}

/**
 * A copy-on-write disk whose backing file is `base`; the base is never written. With
 * `sizeBytes` the disk is larger than the base (the guest grows its partitions into it).
 */
export async function createOverlay(
  base: string,
  baseFormat: string,
  overlay: string,
  sizeBytes?: number,
): Promise<void> {
  const size = sizeBytes === undefined ? [] : [String(sizeBytes)];
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', baseFormat, overlay, ...size]);
}

/** An empty standalone qcow2 (a new data disk). */
export async function createImage(file: string, sizeBytes: number): Promise<void> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', file, String(sizeBytes)]);
}

/** SHA-256 of a file, streamed so multi-GiB images do not sit in memory. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Grows a qcow2 file that no guest holds open (a running guest's disk grows through QMP). */
export async function resizeImage(file: string, sizeBytes: number): Promise<void> {
  await run('qemu-img', ['resize', '-q', '-f', 'qcow2', file, String(sizeBytes)]);
}
