import { hostAccel } from '../hypervisor/accel-probe';
import { readConfigFile } from '../domain/config-file';
import { serveMetrics } from './metrics-endpoint';
import fs from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Worker } from '@temporalio/worker';
import { createHostActivities, reportHost, type HostActivityDeps } from '../activities/host/host-activities';
import { discardStrayCanaries } from '../activities/host/patch-activities';
import { withOperatorErrors } from '../activities/operator-errors';
import { connectWorkerConnection } from '../client/temporal';
import { dataPaths, installed, loadConfig, type Config } from '../domain/config';
import { idSchema } from '../domain/ids';
import { interfaceNameSchema } from '../domain/network';
import { logger } from '../domain/logger';
import { hostTaskQueue, isSimHost, SIM_HOST_PREFIX } from '../domain/names';
import { rotateConsoleLog } from '../hypervisor/console-log';
import { HostNetwork } from '../hypervisor/host-network';
import { QemuHost } from '../hypervisor/qemu-host';
import { openInventoryWhenReady, type Inventory } from '../inventory/db';
import { recordEvent } from '../inventory/events';
import { markHostDown, registerHost, touchHostHeartbeat } from '../inventory/hosts';
import { AGENT_VERSION } from './version';
import { stopWorker } from './stop-worker';

export interface HostAgentOptions {
  hostId: string;
  cluster: string;
  migrationPorts: { first: number; last: number };
  migrationAddress: string;
  factsIntervalMs: number;
  /** Memory placement may hand out; defaults to what the machine has. */
  allocatableMemoryMiB?: number;
  /** vCPUs placement may hand out per physical CPU (Nova's cpu_allocation_ratio). */
  cpuAllocationRatio: number;
  /**
   * Networks: the namespace the host's bridges and taps live in (the local stack's hosts) and
   * the uplinks that carry networks between hosts. Without either, the host serves no networks.
   */
  netns?: string;
  uplinks?: string[];
}

/** The host's patch level lives in its directory so a patch (and a restart) can change it. */
function patchLevelFile(hostDir: string) {
  const file = path.join(hostDir, 'patch-level');
  return {
    read: () => {
      try {
        return fs.readFileSync(file, 'utf8').trim() || '0';
      } catch {
        return '0';
      }
    },
    write: (level: string) => fs.writeFileSync(file, `${level}\n`),
  };
}

async function sampleMetrics(
  inv: Inventory,
  opts: HostAgentOptions,
  host: Pick<HostActivityDeps, 'qemu' | 'patchLevel' | 'accelFacts' | 'network'>,
) {
  // The heartbeat first: it says the agent answers, and must not wait on a slow sample (a loaded
  // host's QMP answers or a busy database would otherwise age it towards a fence).
  await touchHostHeartbeat(inv, opts.hostId);
  const report = await reportHost({ hostId: opts.hostId, ...host });
  const at = new Date();
  await inv.metrics.insertOne({
    _id: `${opts.hostId}-${at.getTime()}`,
    hostId: opts.hostId,
    at,
    host: { ...report.load, runningVms: report.guests.length },
    vms: report.guests.map((g) => ({
      vmId: g.vmId,
      pid: g.pid,
      status: g.status,
      memoryMiB: g.memoryMiB,
      heartbeatAgeSec: g.heartbeatAgeSec,
    })),
  });
}

/**
 * Runs one host agent until `signal` aborts: registers the host, re-adopts the guests still
 * running from a previous agent, samples facts into `metrics`, and serves the host's task
 * queue. Stopping the agent never stops its guests.
 */
export async function runHostAgent(
  config: Config,
  opts: HostAgentOptions,
  signal: AbortSignal,
): Promise<void> {
  const log = logger.child({ hostId: opts.hostId });
  const hostDir = dataPaths(config.dataDir).hostDir(opts.hostId);
  const accelFacts = await hostAccel({
    cacheFile: installed.accelProbe,
    guestDisk: installed.guestDisk,
    forced: config.accel === 'auto' ? undefined : config.accel,
  });
  log.info(accelFacts, 'accelerator');
  const qemu = new QemuHost(hostDir, accelFacts.accel);
  const network =
    opts.netns !== undefined || opts.uplinks?.length
      ? new HostNetwork({
          netns: opts.netns,
          uplinks: opts.uplinks ?? [],
          tapHelper: installed.tapHelper,
          vlanPort: installed.vlanPort,
          runDir: hostDir,
        })
      : undefined;
  await network?.check();
  const patchLevelStore = patchLevelFile(hostDir);
  const patchLevel = patchLevelStore.read;
  const inv = await openInventoryWhenReady(config, (err) =>
    log.warn({ err: err.message }, 'the inventory is not ready yet; retrying'),
  );
  const connection = await connectWorkerConnection(config);
  try {
    const canaries = discardStrayCanaries(qemu);
    // The network side of the guests it re-adopts: a bridge, VLAN link or tagger that went
    // away while no agent ran is made again before they are served.
    for (const g of qemu.list()) if (network && g.spec.nics?.length) await network.attach(g.spec.nics);
    if (canaries.length) log.warn({ canaries }, 'discarded canary guests left by an earlier agent');
    const report = await reportHost({ hostId: opts.hostId, qemu, patchLevel, accelFacts, network });
    const taskQueue = hostTaskQueue(opts.hostId);
    const now = new Date();
    await registerHost(inv, opts.hostId, {
      cluster: opts.cluster,
      facts: report.facts,
      allocatable: {
        memoryMiB: opts.allocatableMemoryMiB ?? report.facts.memoryMiB,
        vcpus: Math.floor(report.facts.vcpus * opts.cpuAllocationRatio),
      },
      patchLevel: report.patchLevel,
      agent: {
        version: AGENT_VERSION,
        pid: process.pid,
        startedAt: now,
        heartbeatAt: now,
        taskQueue,
        factsIntervalMs: opts.factsIntervalMs,
      },
      migrationPorts: opts.migrationPorts,
      migrationAddress: opts.migrationAddress,
    });
    if (report.guests.length > 0) {
      await recordEvent(inv, {
        operation: 'agent-start',
        subject: `host/${opts.hostId}`,
        outcome: 'info',
        message: `agent re-adopted ${report.guests.length} running guest(s): ${report.guests.map((g) => g.vmId).join(', ')}`,
      });
    }
    log.info({ guests: report.guests.map((g) => g.vmId), taskQueue }, 'host registered');

    const worker = await Worker.create({
      connection,
      namespace: config.temporal.namespace,
      taskQueue,
      activities: withOperatorErrors(
        createHostActivities({
          hostId: opts.hostId,
          qemu,
          patchLevel,
          datastoreDir: dataPaths(config.dataDir).datastore,
          imagesDir: dataPaths(config.dataDir).images,
          backupsDir: dataPaths(config.dataDir).backups,
          migrationAddress: opts.migrationAddress,
          migrationPorts: opts.migrationPorts,
          setPatchLevel: patchLevelStore.write,
          // Stopping is all a restart needs: the host's supervisor starts the agent again.
          requestRestart: () => stopWorker(worker),
          guestDisk: installed.guestDisk,
          accelFacts,
          network,
        }),
      ),
    });
    // Once a second: a guest flooding its console costs the host a bounded file, never the agent's heartbeat.
    const consoleRotation = setInterval(() => {
      for (const g of qemu.list()) rotateConsoleLog(g.serialLog, config.consoleLogMaxBytes);
    }, 1000);
    const sampler = setInterval(() => {
      sampleMetrics(inv, opts, { qemu, patchLevel, accelFacts, network }).catch((err: unknown) =>
        log.warn({ err }, 'metrics sample failed'),
      );
    }, opts.factsIntervalMs);
    signal.addEventListener('abort', () => stopWorker(worker), { once: true });
    try {
      await worker.run();
    } finally {
      clearInterval(sampler);
      clearInterval(consoleRotation);
      qemu.disconnectAll();
      await markHostDown(inv, opts.hostId).catch(() => undefined);
    }
  } finally {
    await connection.close();
    await inv.close();
  }
}

function portRange(value: string): { first: number; last: number } {
  const m = /^(\d+)-(\d+)$/.exec(value);
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || first < 1024 || last > 65535 || first > last) {
    throw new InvalidArgumentError('expected FIRST-LAST with 1024 <= FIRST <= LAST <= 65535');
  }
  return { first, last };
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

function interfaceName(value: string): string {
  const r = interfaceNameSchema.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0].message);
  return value;
}

function hostId(value: string): string {
  const r = idSchema.safeParse(value);
  if (!r.success) throw new InvalidArgumentError(r.error.issues[0].message);
  if (isSimHost(value))
    throw new InvalidArgumentError(`"${SIM_HOST_PREFIX}" names are reserved for the simulated fleet`);
  return value;
}

if (require.main === module) {
  // virtflow.yaml's `agent:` section (VIRTFLOW_CONFIG) gives the flags' defaults; flags win.
  const file = process.env.VIRTFLOW_CONFIG ? (readConfigFile(process.env.VIRTFLOW_CONFIG).agent ?? {}) : {};
  const program = new Command('host-agent')
    .description('virtflow host agent: runs the QEMU guests of one host and serves its task queue')
    .requiredOption('--host <id>', 'host id (DNS label)', hostId, file.hostId)
    .option('--cluster <name>', 'cluster the host belongs to', file.cluster ?? 'local')
    .requiredOption(
      '--migration-ports <first-last>',
      'TCP ports for incoming migrations',
      portRange,
      file.migrationPorts ? portRange(file.migrationPorts) : undefined,
    )
    .option(
      '--migration-address <ip>',
      'address other hosts reach for migrations',
      file.migrationAddress ?? '127.0.0.1',
    )
    .option(
      '--facts-interval <seconds>',
      'how often facts are sampled into metrics',
      positiveInt,
      file.factsIntervalSec ?? 10,
    )
    .option(
      '--memory <MiB>',
      'memory placement may allocate (default: all of it)',
      positiveInt,
      file.memoryMiB,
    )
    .option(
      '--cpu-ratio <n>',
      'vCPUs placement may allocate per physical CPU',
      positiveInt,
      file.cpuRatio ?? 8,
    )
    .option(
      '--netns <name>',
      "network namespace for this host's bridges and taps (the local stack)",
      file.netns,
    )
    .option(
      '--uplink <interface>',
      'an interface that carries networks between hosts (repeat for more)',
      (v: string, all: string[]) => [...all, interfaceName(v)],
      (file.uplinks ?? []).map(interfaceName),
    )
    .parse();
  const o = program.opts<{
    host: string;
    cluster: string;
    migrationPorts: { first: number; last: number };
    migrationAddress: string;
    factsInterval: number;
    memory?: number;
    cpuRatio: number;
    netns?: string;
    uplink: string[];
  }>();
  const abort = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => abort.abort());
  const config = loadConfig();
  serveMetrics(config, 'host-agent', o.host);
  runHostAgent(
    config,
    {
      hostId: o.host,
      cluster: o.cluster,
      migrationPorts: o.migrationPorts,
      migrationAddress: o.migrationAddress,
      factsIntervalMs: o.factsInterval * 1000,
      allocatableMemoryMiB: o.memory,
      cpuAllocationRatio: o.cpuRatio,
      netns: o.netns,
      uplinks: o.uplink,
    },
    abort.signal,
  ).then(
    () => process.exit(0),
    (err: unknown) => {
      logger.fatal({ err }, 'host agent failed');
      process.exit(1);
    },
  );
}
