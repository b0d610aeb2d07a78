/**
 * Whether the next backup of a chain can be incremental. It can only if the parent's file is
 * still there and the chain's dirty bitmap is on the disk, consistent and recording; otherwise
 * the reason becomes the recorded cause of a fresh full backup.
 */
export function lineageProblem(
  previous: { bitmap: string; path: string },
  inspection: {
    parentExists: boolean;
    bitmaps: { name: string; inconsistent: boolean; recording: boolean }[];
  },
): string | null {
  if (!inspection.parentExists) return `the parent backup file ${previous.path} is missing`;
  const bitmap = inspection.bitmaps.find((b) => b.name === previous.bitmap);
  if (!bitmap) {
    return `dirty bitmap ${previous.bitmap} is not on the disk (the VM lost it, e.g. its QEMU was killed or its disk replaced)`;
  }
  if (bitmap.inconsistent)
    return `dirty bitmap ${previous.bitmap} is inconsistent (QEMU did not store it cleanly)`;
  if (!bitmap.recording) return `dirty bitmap ${previous.bitmap} is not recording`;
  return null;
}
