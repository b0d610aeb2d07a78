import { z } from 'zod';

/**
 * Every id is a DNS label: safe in file names, QEMU arguments, workflow ids and URLs.
 * The messages name the rule so an operator knows what to change.
 */
export const idSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(63, 'must be at most 63 characters')
  .regex(
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
    'must be a DNS label: lowercase letters, digits and inner hyphens only (no "/", "." or uppercase)',
  );
