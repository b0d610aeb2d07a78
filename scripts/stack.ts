/**
 * `npm start`: the whole of virtflow on one machine. Starts the Temporal dev server (Web UI
 * on :8233), FerretDB, the controller worker and three host agents, shows a real operation,
 * then runs until Ctrl-C, when it stops everything and leaves no process behind.
 */
import { auditOperations } from '../client/audit-operations';
import fs from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../domain/names';
import { dataPaths, installDir, installed, loadConfig, type Config } from '../domain/config';
import { connectClient, runUrl } from '../client/temporal';
import { vmOperations } from '../client/vm-operations';
import { localQemuHost } from '../hypervisor/local-qemu-host';
import { openInventory, type Inventory } from '../inventory/db';
import type { ImageDoc } from '../inventory/schemas';
import { sha256File } from '../hypervisor/qemu-img';
import { importImage } from '../inventory/images';
import { setVmState } from '../inventory/vms';
import { startFerretDb } from './services/ferretdb';
import { startTemporalDevServer } from './services/temporal-dev-server';
import { hostAgentArgs, localHosts, spawnEntryPoint, Supervised } from './services/entry-points';
import type { ManagedProcess } from './services/processes';

const say = (msg: string) => console.log(`virtflow: ${msg}`);
const DEMO_VM = 'demo-1';
const GUEST_IMAGE = 'debian-busybox';

/** Powers off every guest of the local hosts and records them as stopped. */
async function powerOffGuests(config: Config): Promise<void> {
  const inv = await openInventory(config).catch(() => undefined);
  for (const { hostId } of localHosts) {
    const qemu = localQemuHost(config.dataDir, hostId);
    for (const guest of qemu.list()) {
      await qemu.stop(guest.vmId, 0);
      // The workers are already stopped, so no workflow holds the VM: the stack records it.
      if (inv) await setVmState(inv, guest.vmId, 'stopped', 'local stack shut down').catch(() => undefined);
    }
  }
  await inv?.close();
}

/**
 * Imports the bootstrap's guest disk as `debian-busybox`. Image names are immutable, so when a
 * rebuilt guest differs from the one already imported, the new one gets its checksum as suffix.
 */
async function importGuestImage(inv: Inventory, config: Config): Promise<ImageDoc> {
  const repo = dataPaths(config.dataDir).images;
  const sha = await sha256File(installed.guestDisk);
  const existing = await inv.images.findOne({ _id: GUEST_IMAGE });
  const name = !existing || existing.sha256 === sha ? GUEST_IMAGE : `${GUEST_IMAGE}-${sha.slice(0, 8)}`;
  return importImage(inv, repo, { name, file: installed.guestDisk });
}

/** The real operation `npm start` shows: the guest image imported and a VM running on a host. */
async function showDemoVm(client: Client, config: Config): Promise<void> {
  const inv = await openInventory(config);
  try {
    const image = await importGuestImage(inv, config);
    say(`image ${image._id}: ${image.format}, sha256 ${image.sha256.slice(0, 16)}…`);
    const ops = vmOperations(client, config);
    const existing = await inv.vms.findOne({ _id: DEMO_VM });
    if (existing?.state === 'running') {
      say(`vm ${DEMO_VM} is already running on ${existing.host}`);
      return;
    }
    const op = existing
      ? await ops.start({ vmId: DEMO_VM })
      : await ops.create({ vmId: DEMO_VM, image: image._id, memoryMiB: 128 });
    say(
      `${existing ? 'starting' : 'creating'} vm ${DEMO_VM} (placement picks the host, the guest must boot) — ${op.url}`,
    );
    const result = await op.result();
    say(`vm ${DEMO_VM} is running on ${result.host}; try: npx virtflow vm list`);
  } finally {
    await inv.close();
  }
}

async function main(): Promise<void> {
  const base = loadConfig();
  const logDir = path.join(installDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });

  const services: ManagedProcess[] = [];
  const workers: Supervised[] = [];
  let shuttingDown = false;
  let stackConfig: Config | undefined;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    say('stopping workers, guests, FerretDB and Temporal …');
    await Promise.all(workers.map((w) => w.stop()));
    // The local "datacenter" powers off with the stack: no guest outlives it.
    if (stackConfig) await powerOffGuests(stackConfig);
    for (const s of services.reverse()) await s.stop();
    say('stopped');
    process.exit(code);
  };
  process.once('SIGINT', () => void shutdown(0));
  process.once('SIGTERM', () => void shutdown(0));

  try {
    say(
      `starting the Temporal dev server on :${base.localStack.temporalPort} (UI :${base.localStack.uiPort})`,
    );
    const temporal = await startTemporalDevServer({
      port: base.localStack.temporalPort,
      uiPort: base.localStack.uiPort,
      dbFile: path.join(installDir, 'temporal.db'),
      logDir,
    });
    services.push(temporal.process);
    say(`starting FerretDB on :${base.localStack.ferretdbPort}`);
    const ferret = await startFerretDb({
      port: base.localStack.ferretdbPort,
      dataDir: path.join(installDir, 'ferretdb'),
      logDir,
    });
    services.push(ferret.process);

    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_UI_URL: temporal.uiUrl,
      MONGODB_URI: ferret.uri,
    };
    const config = loadConfig(env);
    stackConfig = config;
    say('starting the controller worker and host agents host-a, host-b, host-c');
    workers.push(
      new Supervised(() => spawnEntryPoint('controller', 'worker/controller.ts', [], { logDir, env })),
    );
    for (const host of localHosts) {
      workers.push(
        new Supervised(() =>
          spawnEntryPoint(
            `agent-${host.hostId}`,
            'worker/host-agent.ts',
            hostAgentArgs(host, ['--memory', '4096']),
            {
              logDir,
              env,
            },
          ),
        ),
      );
    }

    const client = await connectClient(config);
    say('checking every host through its agent (workflow checkHost) …');
    for (const { hostId } of localHosts) {
      const workflowId = `${workflowIds.host(hostId)}/check`;
      const result = await client.workflow.execute('checkHost', {
        taskQueue: CONTROLLER_TASK_QUEUE,
        workflowId,
        args: [{ hostId }],
        staticSummary: `Check host ${hostId}`,
        workflowIdConflictPolicy: 'USE_EXISTING',
      });
      say(
        `  ${hostId}: up, QEMU ${result.qemuVersion}, ${result.vcpus} vCPUs, ${result.memoryMiB} MiB, ` +
          `${result.guests.length} guest(s) — ${runUrl(config, workflowId)}`,
      );
    }
    await showDemoVm(client, config);
    await auditOperations(client, config).ensureSchedule(30);
    say('reconciling the inventory with the hosts every 30 s (schedule "reconcile"; `virtflow audit drift`)');
    say(`Temporal Web UI: ${temporal.uiUrl}   logs: ${logDir}`);
    say('running; press Ctrl-C to stop everything');
  } catch (err) {
    console.error(`virtflow: ${(err as Error).message}`);
    await shutdown(1);
  }
}

void main();
