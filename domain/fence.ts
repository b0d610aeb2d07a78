import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { idSchema } from './ids';

/**
 * How the controller fences a host: configured on the controller only (VIRTFLOW_FENCE_CONFIG,
 * a JSON file), never taken from what a host's agent registers, so neither a database writer
 * nor a compromised hypervisor can choose what the controller runs. Secrets are referenced
 * (an environment variable of the controller, or a file), resolved only when a fence runs,
 * and never stored in documents or workflow history, nor printed.
 */

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const envName = z.string().regex(ENV_NAME, 'must be an environment variable name (A-Z, 0-9, _)');

/** A value given to the fence program: plain, or a secret the controller resolves when it fences. */
const envValue = z.union([
  z.string(),
  z.object({ fromEnv: envName }).strict(),
  z.object({ fromFile: z.string().refine((p) => path.isAbsolute(p), 'must be an absolute path') }).strict(),
]);
export type FenceEnvValue = z.infer<typeof envValue>;

const timeoutSec = z.number().int().min(1, 'must be at least 1 s').max(600, 'must be at most 600 s');

/**
 * `command`: a program and its arguments, run without a shell, with only PATH, the host's id
 * and the configured variables in its environment. It must exit 0 only once it has confirmed
 * the host runs nothing (powered off through its BMC, say: `ipmitool … chassis power off`, then
 * `… power status`). `local-stack`: the local stack's own fence (scripts/fence-local-host), which
 * kills the host's agent and guests on this machine and confirms they are gone.
 */
export const fenceDriverSchema = z.discriminatedUnion('driver', [
  z
    .object({
      driver: z.literal('command'),
      argv: z.array(z.string().min(1)).min(1, 'must name the program to run'),
      // Keys are checked one by one, so a bad one is named in the error.
      env: z
        .record(z.string(), envValue)
        .superRefine((vars, ctx) => {
          for (const key of Object.keys(vars))
            if (!ENV_NAME.test(key))
              ctx.addIssue({
                code: 'custom',
                path: [key],
                message: 'must be an environment variable name (A-Z, 0-9, _)',
              });
        })
        .default({}),
      timeoutSec: timeoutSec.default(60),
    })
    .strict(),
  z.object({ driver: z.literal('local-stack'), timeoutSec: timeoutSec.default(30) }).strict(),
]);
export type FenceDriver = z.infer<typeof fenceDriverSchema>;

export const fenceConfigSchema = z
  .object({
    /** Each host's fence; a host not named here gets `default`, if there is one. */
    hosts: z.record(idSchema, fenceDriverSchema).default({}),
    default: fenceDriverSchema.optional(),
  })
  .strict();
export type FenceConfig = z.infer<typeof fenceConfigSchema>;

/** The fence a host gets, or undefined when none is configured (HA then cannot act on it). */
export function fenceFor(config: FenceConfig, hostId: string): FenceDriver | undefined {
  return config.hosts[hostId] ?? config.default;
}

/** What an operator may see of a fence: the driver and program, never a secret's value. */
export function describeFence(f: FenceDriver): string {
  if (f.driver === 'local-stack') return `local-stack (timeout ${f.timeoutSec} s)`;
  const vars = Object.entries(f.env).map(([k, v]) =>
    typeof v === 'string' ? k : 'fromEnv' in v ? `${k}←$${v.fromEnv}` : `${k}←${v.fromFile}`,
  );
  return `command ${f.argv.join(' ')}${vars.length ? ` [env ${vars.join(', ')}]` : ''} (timeout ${f.timeoutSec} s)`;
}

/**
 * Reads the controller's fence configuration, checked in full: read at every fence, so an
 * operator's edit applies without a restart. No file configured means no host can be fenced.
 */
export function loadFenceConfig(file: string | undefined): FenceConfig {
  if (!file) return { hosts: {} };
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`fence configuration ${file} cannot be read: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const parsed = fenceConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`fence configuration ${file}: ${issue.path.join('.')}: ${issue.message}`);
  }
  return parsed.data;
}
