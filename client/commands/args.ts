import fs from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { parseSize } from '../../domain/bytes';

/** Whole numbers pass through as numbers; anything else reaches zod, which names the field. */
export function numberArg(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || Number.isNaN(n)) throw new InvalidArgumentError(`"${value}" is not a number`);
  return n;
}

export function labelArg(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`"${value}" is not KEY=VALUE`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function readArgFile(value: string, what: string): string {
  try {
    return fs.readFileSync(value, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(
      `cannot read ${what} file "${value}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
}

/** `--ssh-key FILE` (repeatable): every key line of an OpenSSH public key file; zod checks each. */
export function sshKeyFileArg(value: string, previous: string[] = []): string[] {
  const keys = readArgFile(value, 'SSH key')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (keys.length === 0) throw new InvalidArgumentError(`SSH key file "${value}" holds no key`);
  return [...previous, ...keys];
}

/** `--user-data FILE`: the file's content, passed to cloud-init as given. */
export function userDataFileArg(value: string): string {
  return readArgFile(value, 'user-data');
}

/** `--disk-size 20G`: a size in bytes, from K/M/G/T (powers of 1024) or plain bytes. */
export function sizeArg(value: string): number {
  const bytes = parseSize(value);
  if (bytes === undefined)
    throw new InvalidArgumentError(`"${value}" is not a size (for example 20G, 512M, 1T)`);
  return bytes;
}

/** A size given once per item (`--data-disk 10G --data-disk 2G`), in the order given. */
export function sizesArg(value: string, previous: number[] = []): number[] {
  return [...previous, sizeArg(value)];
}

/** A repeatable option's values, in the order given. */
export function listArg(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
