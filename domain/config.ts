import path from 'node:path';
import { z } from 'zod';
import { configFileEnv } from './config-file';
import { cpuModelSchema, DEFAULT_CPU_BASELINE, type Accel, type CpuModel } from './cpu';

/** The repository root: install outputs (.virtflow/bin, .virtflow/guest) live under it. */
export const repoRoot = path.resolve(__dirname, '..');
export const installDir = path.join(repoRoot, '.virtflow');

const port = z.coerce.number().int().min(1).max(65535);

const configSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TLS_CERT: z.string().optional(),
  TEMPORAL_TLS_KEY: z.string().optional(),
  TEMPORAL_TLS_CA: z.string().optional(),
  TEMPORAL_UI_URL: z.url().default('http://localhost:8233'),
  MONGODB_URI: z.string().startsWith('mongodb').default('mongodb://127.0.0.1:27017/'),
  VIRTFLOW_DB: z.string().min(1).default('virtflow'),
  /**
   * Connections each process opens to MongoDB. FerretDB on SQLite has one writer at a time and
   * concurrent writers back off by sleeping, so a few connections per process do more work
   * than many; a real MongoDB can take more.
   */
  VIRTFLOW_MONGO_POOL: z.coerce.number().int().min(1).max(500).default(4),
  VIRTFLOW_DATA_DIR: z.string().default(installDir),
  VIRTFLOW_TEMPORAL_PORT: port.default(7233),
  VIRTFLOW_UI_PORT: port.default(8233),
  VIRTFLOW_FERRETDB_PORT: port.default(27017),
  /** Where `npm start` keeps its services' state and logs (Temporal's SQLite file, FerretDB's data). */
  VIRTFLOW_STACK_DIR: z.string().default(installDir),
  /**
   * The controller's fence configuration (a JSON file, domain/fence.ts): how each host is fenced
   * before HA restarts its VMs elsewhere. Unset: no host can be fenced, so HA restarts nothing.
   */
  VIRTFLOW_FENCE_CONFIG: z
    .string()
    .refine((p) => path.isAbsolute(p), 'must be an absolute path')
    .optional(),
  /** The image repository refuses images whose virtual size is larger (GiB; default 2 TiB). */
  VIRTFLOW_IMAGE_MAX_VIRTUAL_GIB: z.coerce
    .number()
    .int()
    .min(1)
    .max(1024 * 1024)
    .default(2048),
  /** A guest's console log is rotated past this size (KiB), however much the guest prints. */
  VIRTFLOW_CONSOLE_LOG_MAX_KIB: z.coerce
    .number()
    .int()
    .min(16)
    .max(1024 * 1024)
    .default(1024),
  /** Every new VM gets this CPU model (a cluster baseline, as vSphere's EVC): see domain/cpu.ts. */
  VIRTFLOW_CPU_BASELINE: cpuModelSchema.default(DEFAULT_CPU_BASELINE),
  /** A host agent's accelerator: `auto` probes whether KVM really boots a guest here. */
  VIRTFLOW_ACCEL: z.enum(['auto', 'kvm', 'tcg'], { error: 'must be auto, kvm or tcg' }).default('auto'),
  /** How long an agent that stopped cleanly (state `down`) may stay away before HA counts its host lost. */
  VIRTFLOW_HA_DOWN_GRACE_SEC: z.coerce.number().int().min(0).max(86_400).default(60),
  /**
   * HA fences on its own only while at most this share of a cluster's hosts looks lost at once;
   * beyond it the controller is more likely the one cut off, and an operator decides.
   */
  VIRTFLOW_HA_MAX_LOST_FRACTION: z.coerce.number().min(0).max(1).default(0.5),
  /**
   * A worker process (controller, host agent) serves Prometheus metrics here (`host:port`): the
   * Temporal SDK's and virtflow's (docs/metrics.md). Unset: no endpoint.
   */
  VIRTFLOW_METRICS_ADDRESS: z
    .string()
    .regex(/^[\w.-]+:\d{1,5}$/, 'must be host:port')
    .optional(),
  /** How often a controller recomputes the fleet gauges (hosts, capacity, drift, backup age). */
  VIRTFLOW_FLEET_METRICS_SEC: z.coerce.number().int().min(1).max(3600).default(15),
  /** Host facts samples (the `metrics` collection) older than this are pruned by a schedule. */
  VIRTFLOW_METRICS_RETENTION_HOURS: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 365)
    .default(72),
  /** The API server's address (`host:port`): loopback unless an operator opens it up. */
  VIRTFLOW_API_ADDRESS: z
    .string()
    .regex(/^[\w.:[\]-]+:\d{1,5}$/, 'must be host:port')
    .default('127.0.0.1:8780'),
  /** The API server serves HTTPS with this certificate and key (PEM files); both or neither. */
  VIRTFLOW_API_TLS_CERT: z.string().optional(),
  VIRTFLOW_API_TLS_KEY: z.string().optional(),
  /**
   * With TLS: client certificates issued by this CA (PEM) are accepted in place of a bearer
   * token; the certificate's subject CN is the id of the token whose grants it carries.
   */
  VIRTFLOW_API_TLS_CLIENT_CA: z.string().optional(),
  VIRTFLOW_LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

/** When HA may act on a host's loss by itself (domain/liveness.ts). */
export interface HaPolicy {
  downGraceMs: number;
  maxLostFraction: number;
}

export interface Config {
  temporal: {
    address: string;
    namespace: string;
    uiUrl: string;
    tls?: { certPath?: string; keyPath?: string; caPath?: string };
  };
  mongo: { uri: string; dbName: string; poolSize: number };
  /** Where hosts' runtime files, the shared datastore, images and backups live. */
  dataDir: string;
  localStack: { temporalPort: number; uiPort: number; ferretdbPort: number; stateDir: string };
  images: { maxVirtualSizeBytes: number };
  consoleLogMaxBytes: number;
  cpuBaseline: CpuModel;
  accel: 'auto' | Accel;
  ha: HaPolicy;
  /** VIRTFLOW_FENCE_CONFIG: read by the controller at every fence. */
  fenceConfigPath?: string;
  logLevel: z.infer<typeof configSchema>['VIRTFLOW_LOG_LEVEL'];
  metrics: { address?: string; fleetIntervalMs: number; retentionMs: number };
  api: { host: string; port: number; tls?: { certPath: string; keyPath: string; clientCaPath?: string } };
}

/**
 * Reads virtflow's configuration from the environment, and from the file VIRTFLOW_CONFIG names
 * (domain/config-file.ts). The only place that does: every
 * process (CLI, controller, host agent, local stack, tests) goes through here.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // A config file (VIRTFLOW_CONFIG) gives defaults; the environment overrides it key by key.
  const merged = env.VIRTFLOW_CONFIG ? { ...configFileEnv(env.VIRTFLOW_CONFIG, env), ...env } : env;
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const from = env.VIRTFLOW_CONFIG ? ` (environment and ${env.VIRTFLOW_CONFIG})` : '';
    throw new Error(`invalid configuration${from}: ${issue.path.join('.')}: ${issue.message}`);
  }
  const e = parsed.data;
  if (e.VIRTFLOW_API_TLS_CLIENT_CA && !e.VIRTFLOW_API_TLS_CERT)
    throw new Error('invalid configuration: VIRTFLOW_API_TLS_CLIENT_CA needs VIRTFLOW_API_TLS_CERT and _KEY');
  if (!e.VIRTFLOW_API_TLS_CERT !== !e.VIRTFLOW_API_TLS_KEY)
    throw new Error('invalid configuration: VIRTFLOW_API_TLS_CERT and VIRTFLOW_API_TLS_KEY go together');
  const apiPort = e.VIRTFLOW_API_ADDRESS.lastIndexOf(':');
  const tlsGiven = e.TEMPORAL_TLS_CERT || e.TEMPORAL_TLS_KEY || e.TEMPORAL_TLS_CA;
  return {
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      uiUrl: e.TEMPORAL_UI_URL.replace(/\/$/, ''),
      tls: tlsGiven
        ? { certPath: e.TEMPORAL_TLS_CERT, keyPath: e.TEMPORAL_TLS_KEY, caPath: e.TEMPORAL_TLS_CA }
        : undefined,
    },
    mongo: { uri: e.MONGODB_URI, dbName: e.VIRTFLOW_DB, poolSize: e.VIRTFLOW_MONGO_POOL },
    dataDir: path.resolve(e.VIRTFLOW_DATA_DIR),
    localStack: {
      temporalPort: e.VIRTFLOW_TEMPORAL_PORT,
      uiPort: e.VIRTFLOW_UI_PORT,
      ferretdbPort: e.VIRTFLOW_FERRETDB_PORT,
      stateDir: path.resolve(e.VIRTFLOW_STACK_DIR),
    },
    images: { maxVirtualSizeBytes: e.VIRTFLOW_IMAGE_MAX_VIRTUAL_GIB * 1024 ** 3 },
    consoleLogMaxBytes: e.VIRTFLOW_CONSOLE_LOG_MAX_KIB * 1024,
    cpuBaseline: e.VIRTFLOW_CPU_BASELINE,
    accel: e.VIRTFLOW_ACCEL,
    fenceConfigPath: e.VIRTFLOW_FENCE_CONFIG,
    ha: {
      downGraceMs: e.VIRTFLOW_HA_DOWN_GRACE_SEC * 1000,
      maxLostFraction: e.VIRTFLOW_HA_MAX_LOST_FRACTION,
    },
    logLevel: e.VIRTFLOW_LOG_LEVEL,
    metrics: {
      address: e.VIRTFLOW_METRICS_ADDRESS,
      fleetIntervalMs: e.VIRTFLOW_FLEET_METRICS_SEC * 1000,
      retentionMs: e.VIRTFLOW_METRICS_RETENTION_HOURS * 3600 * 1000,
    },
    api: {
      host: e.VIRTFLOW_API_ADDRESS.slice(0, apiPort).replace(/^\[(.*)\]$/, '$1'),
      port: Number(e.VIRTFLOW_API_ADDRESS.slice(apiPort + 1)),
      tls:
        e.VIRTFLOW_API_TLS_CERT && e.VIRTFLOW_API_TLS_KEY
          ? {
              certPath: e.VIRTFLOW_API_TLS_CERT,
              keyPath: e.VIRTFLOW_API_TLS_KEY,
              clientCaPath: e.VIRTFLOW_API_TLS_CLIENT_CA,
            }
          : undefined,
    },
  };
}

/** Paths of the things scripts/bootstrap installs. */
export const installed = {
  temporal: path.join(installDir, 'bin', 'temporal'),
  ferretdb: path.join(installDir, 'bin', 'ferretdb'),
  /** Opens a NIC's tap inside a host's network namespace for QEMU (tools/tap-helper). */
  tapHelper: path.join(installDir, 'bin', 'tap-helper'),
  /** Carries one VLAN between an uplink and a network's bridge in user space (tools/vlan-port). */
  vlanPort: path.join(installDir, 'bin', 'vlan-port'),
  guestDisk: path.join(installDir, 'guest', 'disk.qcow2'),
  /** The test guest's busybox, for tools the local lab runs in its namespaces (ping). */
  busybox: path.join(installDir, 'guest', 'busybox'),
  /** The Debian 12 cloud image `npm run build:debian-image` builds (on request; test:all does). */
  debianImage: path.join(installDir, 'debian-12', 'debian-12.qcow2'),
  /** Whether KVM really runs guests on this machine, probed once (hypervisor/accel-probe.ts). */
  accelProbe: path.join(installDir, 'accel.json'),
  /** The cluster stack's Temporal server and its SQL schema tool (`scripts/bootstrap --cluster`). */
  temporalServer: path.join(installDir, 'bin', 'temporal-server'),
  temporalSqlTool: path.join(installDir, 'bin', 'temporal-sql-tool'),
  /** The Web UI server for a Temporal server other than the dev server. */
  temporalUi: path.join(installDir, 'bin', 'temporal-ui-server'),
  /** Its schema files, copied from the server's module (schema/postgresql/v12). */
  temporalSchema: path.join(installDir, 'temporal-schema', 'postgresql', 'v12'),
  /** Debian's PostgreSQL 15 server binaries. */
  postgres: {
    server: '/usr/lib/postgresql/15/bin/postgres',
    initdb: '/usr/lib/postgresql/15/bin/initdb',
    psql: '/usr/bin/psql',
  },
  /** Debian's Prometheus, for the metrics test and the cluster stack. */
  prometheus: '/usr/bin/prometheus',
};

/** The layout of the data directory (DESIGN.md §4). */
export function dataPaths(dataDir: string) {
  return {
    hostDir: (hostId: string) => path.join(dataDir, 'hosts', hostId),
    datastore: path.join(dataDir, 'datastore'),
    images: path.join(dataDir, 'images'),
    backups: path.join(dataDir, 'backups'),
  };
}
