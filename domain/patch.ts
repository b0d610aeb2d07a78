import { z } from 'zod';
import { idSchema } from './ids';

/**
 * A patch in the catalogue (`patches/<name>/patch.json` beside its executables): the patch
 * level it brings a host to, how long it may take, and optional pre-flight and post checks.
 * A pre-flight that exits 3 means "this host does not need it": the host is skipped.
 */
export const patchDefinitionSchema = z.object({
  name: idSchema,
  version: z.string().min(1).max(64),
  description: z.string().default(''),
  timeoutSec: z.number().int().min(1).max(86_400),
  preflight: z
    .string()
    .regex(/^[a-z0-9._-]+$/)
    .optional(),
  post: z
    .string()
    .regex(/^[a-z0-9._-]+$/)
    .optional(),
});
export type PatchDefinition = z.infer<typeof patchDefinitionSchema>;

/** Exit code of a pre-flight check that asks for the host to be skipped. */
export const PREFLIGHT_SKIP = 3;

export const patchHostSchema = z.object({
  hostId: idSchema,
  patch: idSchema,
  /** Boot a throw-away guest after the restart to prove QEMU still works. */
  canary: z.boolean().default(true),
  /** How long the agent may take to come back after its restart. */
  restartTimeoutSec: z.number().int().min(10).max(3600).default(120),
  /**
   * Set by a rolling patch: the workflow to signal with the outcome, and the attempt it is for.
   * The rollout then follows hosts it started in an earlier run, after a continue-as-new.
   */
  reportTo: z.object({ workflowId: z.string().min(1), attempt: z.number().int().min(1) }).optional(),
});
export type PatchHostRequest = z.input<typeof patchHostSchema>;
