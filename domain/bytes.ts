const UNITS = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 } as const;

/** `20G`, `512M`, `1T` or a number of bytes, as operators write disk sizes (powers of 1024). */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNITS[m[2].toUpperCase() as keyof typeof UNITS]);
}

/** A size as an operator reads it: the largest unit that keeps a whole or one-decimal number. */
export function formatBytes(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const n = bytes / UNITS[unit];
    if (n >= 1) return `${Number.isInteger(n) ? n : n.toFixed(1)} ${unit}iB`;
  }
  return `${bytes} bytes`;
}

/** The bytes of several disks in all. */
export const sumBytes = (sizes: readonly number[]): number => sizes.reduce((a, b) => a + b, 0);
