import { z } from 'zod';

/**
 * Labels on VMs and hosts, and the selectors that match them. Values are printed to operators'
 * terminals, so they hold printable text only: a control character (an escape sequence) is
 * refused, not stored and replayed later.
 */
export const labelKeySchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$/, 'label keys are lowercase DNS-like names');

export const labelValueSchema = z
  .string()
  .max(63, 'label values are at most 63 characters')
  // eslint-disable-next-line no-control-regex
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, 'label values may not contain control characters');

export const labelsSchema = z.record(labelKeySchema, labelValueSchema);

/** A selector must name at least one label: an empty one would select everything. */
export const labelSelectorSchema = labelsSchema.refine((l) => Object.keys(l).length > 0, {
  message: 'must name at least one label (an empty selector would select every VM)',
});
