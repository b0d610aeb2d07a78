import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

/**
 * virtflow.yaml: the settings of a controller or a host agent in one file (VIRTFLOW_CONFIG
 * names it), instead of environment variables. Every key is optional; an environment variable
 * still wins over the file. Unknown keys are refused by name (a typo must not pass silently),
 * and secrets come from files (`uriFile`), so the file itself can be world-readable.
 * docs/operations.md shows a complete one.
 */
const secret = z.string().refine((p) => path.isAbsolute(p), 'must be an absolute path');
const absolute = z.string().refine((p) => path.isAbsolute(p), 'must be an absolute path');

const fileSchema = z
  .object({
    temporal: z
      .object({
        address: z.string().min(1).optional(),
        namespace: z.string().min(1).optional(),
        uiUrl: z.url().optional(),
        tls: z
          .object({ cert: absolute.optional(), key: absolute.optional(), ca: absolute.optional() })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    inventory: z
      .object({
        uri: z.string().startsWith('mongodb').optional(),
        /** A file holding the URI (it carries the database password). */
        uriFile: secret.optional(),
        database: z.string().min(1).optional(),
        poolSize: z.number().int().min(1).max(500).optional(),
      })
      .strict()
      .refine((i) => !(i.uri && i.uriFile), 'give uri or uriFile, not both')
      .optional(),
    dataDir: absolute.optional(),
    fenceConfig: absolute.optional(),
    cpuBaseline: z.string().optional(),
    accel: z.enum(['auto', 'kvm', 'tcg']).optional(),
    ha: z
      .object({
        downGraceSec: z.number().int().min(0).optional(),
        maxLostFraction: z.number().min(0).max(1).optional(),
      })
      .strict()
      .optional(),
    metrics: z
      .object({
        address: z.string().optional(),
        fleetIntervalSec: z.number().int().min(1).optional(),
        retentionHours: z.number().int().min(1).optional(),
      })
      .strict()
      .optional(),
    /** The API server (docs/api.md). */
    api: z
      .object({
        address: z.string().optional(),
        tlsCert: absolute.optional(),
        tlsKey: absolute.optional(),
        tlsClientCa: absolute.optional(),
      })
      .strict()
      .optional(),
    images: z
      .object({ maxVirtualGiB: z.number().int().min(1).optional() })
      .strict()
      .optional(),
    consoleLogMaxKiB: z.number().int().min(16).optional(),
    logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).optional(),
    /** A host agent's own settings: the defaults of its command-line flags. */
    agent: z
      .object({
        hostId: z
          .string()
          .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes')
          .optional(),
        cluster: z.string().min(1).optional(),
        migrationPorts: z
          .string()
          .regex(/^\d+-\d+$/, 'must be <first>-<last>')
          .optional(),
        migrationAddress: z.string().min(1).optional(),
        factsIntervalSec: z.number().int().min(1).optional(),
        memoryMiB: z.number().int().min(1).optional(),
        cpuRatio: z.number().int().min(1).optional(),
        netns: z.string().min(1).optional(),
        uplinks: z.array(z.string().min(1)).optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof fileSchema>;

/** Reads and validates a config file; errors name the file, the key's path and the reason. */
export function readConfigFile(file: string): ConfigFile {
  let raw: unknown;
  try {
    raw = parse(fs.readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    throw new Error(`invalid configuration file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
    const why = issue.code === 'unrecognized_keys' ? 'is not a setting virtflow knows' : issue.message;
    throw new Error(`invalid configuration file ${file}: ${key.join('.') || '(top level)'}: ${why}`);
  }
  return parsed.data;
}

/** Reads a secret file: its content without the trailing newline. */
function readSecret(file: string, key: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`${key}: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The file's settings as the environment variables they stand for (domain/config.ts validates
 * both the same way). Numbers become strings, as the environment would carry them. `outer` is
 * the environment that will override them.
 */
export function configFileEnv(file: string, outer: NodeJS.ProcessEnv = {}): Record<string, string> {
  const c = readConfigFile(file);
  const env: Record<string, string | number | undefined> = {
    TEMPORAL_ADDRESS: c.temporal?.address,
    TEMPORAL_NAMESPACE: c.temporal?.namespace,
    TEMPORAL_UI_URL: c.temporal?.uiUrl,
    TEMPORAL_TLS_CERT: c.temporal?.tls?.cert,
    TEMPORAL_TLS_KEY: c.temporal?.tls?.key,
    TEMPORAL_TLS_CA: c.temporal?.tls?.ca,
    // A secret the environment overrides is not read at all.
    MONGODB_URI:
      c.inventory?.uriFile && !outer.MONGODB_URI
        ? readSecret(c.inventory.uriFile, 'inventory.uriFile')
        : c.inventory?.uri,
    VIRTFLOW_DB: c.inventory?.database,
    VIRTFLOW_MONGO_POOL: c.inventory?.poolSize,
    VIRTFLOW_DATA_DIR: c.dataDir,
    VIRTFLOW_FENCE_CONFIG: c.fenceConfig,
    VIRTFLOW_CPU_BASELINE: c.cpuBaseline,
    VIRTFLOW_ACCEL: c.accel,
    VIRTFLOW_HA_DOWN_GRACE_SEC: c.ha?.downGraceSec,
    VIRTFLOW_HA_MAX_LOST_FRACTION: c.ha?.maxLostFraction,
    VIRTFLOW_METRICS_ADDRESS: c.metrics?.address,
    VIRTFLOW_FLEET_METRICS_SEC: c.metrics?.fleetIntervalSec,
    VIRTFLOW_METRICS_RETENTION_HOURS: c.metrics?.retentionHours,
    VIRTFLOW_API_ADDRESS: c.api?.address,
    VIRTFLOW_API_TLS_CERT: c.api?.tlsCert,
    VIRTFLOW_API_TLS_KEY: c.api?.tlsKey,
    VIRTFLOW_API_TLS_CLIENT_CA: c.api?.tlsClientCa,
    VIRTFLOW_IMAGE_MAX_VIRTUAL_GIB: c.images?.maxVirtualGiB,
    VIRTFLOW_CONSOLE_LOG_MAX_KIB: c.consoleLogMaxKiB,
    VIRTFLOW_LOG_LEVEL: c.logLevel,
  };
  return Object.fromEntries(
    Object.entries(env)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, String(v)]),
  );
}
