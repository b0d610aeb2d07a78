import { InvalidArgumentError } from 'commander';

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
