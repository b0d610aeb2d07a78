/**
 * `npm start`: the whole of virtflow on one machine. Starts the Temporal dev server (Web UI
 * on :8233), FerretDB, the controller worker and three host agents (each in a network
 * namespace of its own, joined by one playing the switch), shows a real operation (a VM on
 * network `lab`, answering pings), then runs until Ctrl-C, when it stops everything and leaves
 * no process or namespace behind.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { auditOperations } from '../client/audit-operations';
import type { Client } from '@temporalio/client';
import { CONTROLLER_TASK_QUEUE, workflowIds } from '../domain/names';
import { dataPaths, installed, loadConfig, type Config } from '../domain/config';
import { ResourceBusyError } from '../domain/errors';
import { connectClient, runUrl } from '../client/temporal';
import { vmOperations } from '../client/vm-operations';
import { localQemuHost } from '../hypervisor/local-qemu-host';
import { openInventory, type Inventory } from '../inventory/db';
import type { ImageDoc, VmDoc } from '../inventory/schemas';
import { sha256File } from '../hypervisor/qemu-img';
import { importImage } from '../inventory/images';
import { setVmState } from '../inventory/vms';
import { startFerretDb } from './services/ferretdb';
import { startTemporalDevServer } from './services/temporal-dev-server';
import {
  hostAgentArgs,
  localFenceConfig,
  localHosts,
  spawnEntryPoint,
  Supervised,
} from './services/entry-points';
import { ManagedProcess } from './services/processes';
import { killStrayGuests } from './services/stray-guests';
import { LAB_UPLINK, LabNetwork } from './services/lab-network';
import { createNetwork } from '../inventory/networks';
import { ensureLocalAdminToken } from './services/admin-token';

const run = promisify(execFile);

const say = (msg: string) => console.log(`virtflow: ${msg}`);
const DEMO_VM = 'demo-1';
const GUEST_IMAGE = 'debian-busybox';
/** The demo network: untagged on every local host's uplink; the lab's switch is its gateway. */
const DEMO_NETWORK = { name: 'lab', cidr: '10.20.0.0/24', gateway: '10.20.0.1', uplink: LAB_UPLINK };

/**
 * Powers off every guest of the local hosts and records them as stopped, then kills any QEMU
 * process under the data directory that no pidfile named (an agent stopped while starting it).
 */
async function powerOffGuests(config: Config): Promise<void> {
  const inv = await openInventory(config).catch(() => undefined);
  for (const { hostId } of localHosts) {
    const qemu = localQemuHost(config.dataDir, hostId);
    for (const guest of qemu.list()) {
      await qemu.stop(guest.vmId, 0).catch(() => qemu.kill(guest.vmId));
      // The workers are already stopped, so no workflow holds the VM: the stack records it.
      if (inv) await setVmState(inv, guest.vmId, 'stopped', 'local stack shut down').catch(() => undefined);
    }
  }
  await inv?.close().catch(() => undefined);
  const strays = await killStrayGuests(config.dataDir);
  if (strays > 0) say(`killed ${strays} guest process(es) that no pidfile named`);
}

/**
 * Imports the bootstrap's guest disk as `debian-busybox`. Image names are immutable, so when a
 * rebuilt guest differs from the one already imported, the new one gets its checksum as suffix.
 */
async function importGuestImage(inv: Inventory, config: Config): Promise<ImageDoc> {
  const repo = dataPaths(config.dataDir).images;
  const sha = await sha256File(installed.guestDisk);
  const existing = await inv.images.findOne({ _id: GUEST_IMAGE });
  const name = !existing || existing.sourceSha256 === sha ? GUEST_IMAGE : `${GUEST_IMAGE}-${sha.slice(0, 8)}`;
  return importImage(inv, repo, { name, file: installed.guestDisk });
}

/** Pings the demo VM's address from the lab's switch, the way an operator reaches it. */
async function showReachable(lab: LabNetwork, vm: VmDoc | null): Promise<void> {
  const ip = vm?.guest.nics?.find((n) => n.network === DEMO_NETWORK.name)?.ip;
  if (!ip) return;
  const ping = ['ip', 'netns', 'exec', lab.switchNs, installed.busybox, 'ping', '-c', '3', '-W', '2', ip];
  try {
    const { stdout } = await run(ping[0], ping.slice(1));
    say(
      `vm ${DEMO_VM} answers on network ${DEMO_NETWORK.name}: ${/\d+ packets received/.exec(stdout)?.[0] ?? '?'} of 3 pings to ${ip}`,
    );
  } catch {
    say(`vm ${DEMO_VM} did not answer 3 pings to ${ip} on network ${DEMO_NETWORK.name}`);
  }
  say(`reach it yourself: sudo ${ping.join(' ')}`);
}

/** The real operation `npm start` shows: the guest image imported and a VM running on a host. */
async function showDemoVm(client: Client, config: Config, lab: LabNetwork): Promise<void> {
  const inv = await openInventory(config);
  try {
    const image = await importGuestImage(inv, config);
    say(
      `image ${image._id}: ${image.format} (from ${image.sourceFormat}), ${image.firmware} firmware, guest agent ${image.guestAgent ? 'yes' : 'no'}, sha256 ${image.sha256.slice(0, 16)}…`,
    );
    if (!(await inv.networks.findOne({ _id: DEMO_NETWORK.name }))) {
      const net = await createNetwork(inv, DEMO_NETWORK);
      say(
        `network ${net._id}: ${net.spec.cidr}, untagged on each host's ${LAB_UPLINK}, gateway ${net.spec.gateway}`,
      );
    }
    const ops = vmOperations(client, config);
    const existing = await inv.vms.findOne({ _id: DEMO_VM });
    if (existing?.state === 'running') {
      say(`vm ${DEMO_VM} is already running on ${existing.host}`);
      return;
    }
    let result: { host: string };
    try {
      const op = existing
        ? await ops.start({ vmId: DEMO_VM })
        : await ops.create({
            vmId: DEMO_VM,
            image: image._id,
            memoryMiB: 128,
            nics: [{ network: DEMO_NETWORK.name }],
          });
      say(
        `${existing ? 'starting' : 'creating'} vm ${DEMO_VM} (placement picks the host, the guest must boot) — ${op.url}`,
      );
      result = await op.result();
    } catch (err) {
      // A run the last stack left (its create, or an HA restart the reconciler began) resumed with
      // the workers: follow it instead of failing the whole stack.
      if (!(err instanceof ResourceBusyError)) throw err;
      say(
        `vm ${DEMO_VM} is busy (${err.message}); following that run — ${runUrl(config, workflowIds.vm(DEMO_VM))}`,
      );
      await client.workflow.getHandle(workflowIds.vm(DEMO_VM)).result();
      result = { host: (await inv.vms.findOne({ _id: DEMO_VM }))?.host ?? '?' };
    }
    // The guest's own word that it runs: its agent reports the hostname its seed gave it.
    const guest = await ops.guestInfo(DEMO_VM, result.host);
    const addresses = guest.addresses.map((a) => `${a.address}/${a.prefix} (${a.interface})`).join(', ');
    say(
      `vm ${DEMO_VM} is running on ${result.host}: its guest agent says hostname ${guest.hostname}, ${guest.os}, addresses ${addresses}`,
    );
    await showReachable(lab, await inv.vms.findOne({ _id: DEMO_VM }));
    say(`try: npx virtflow vm show ${DEMO_VM}`);
  } finally {
    await inv.close();
  }
}

async function main(): Promise<void> {
  const base = loadConfig();
  const stateDir = base.localStack.stateDir;
  const logDir = path.join(stateDir, 'logs');
  fs.mkdirSync(logDir, { recursive: true });

  const services: ManagedProcess[] = [];
  const workers: Supervised[] = [];
  let shuttingDown = false;
  let stackConfig: Config | undefined;
  /** Each step is bounded and may fail on its own: nothing stops the ones after it. */
  const step = async (what: string, work: Promise<unknown>) => {
    await work.catch((err: unknown) => say(`while stopping ${what}: ${(err as Error).message}`));
  };
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    say('stopping workers, guests, FerretDB and Temporal …');
    await step('the workers', Promise.all(workers.map((w) => w.stop())));
    // The local "datacenter" powers off with the stack: no guest outlives it. The data directory
    // is the same with or without the services' addresses, so this works however far start got.
    await step('the guests', powerOffGuests(stackConfig ?? base));
    // After the guests: a namespace with a guest's tap in it would outlive its name.
    await step('the network namespaces', LabNetwork.of((stackConfig ?? base).dataDir).destroy());
    for (const s of services.reverse()) await step(s.name, s.stop());
    await step('the other child processes', ManagedProcess.stopAll());
    say('stopped');
    process.exit(code);
  };
  // A terminal's Ctrl-C reaches npm, tsx and this process, sometimes twice: the first one stops
  // everything, later ones only say so (the default handler would exit half-way).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (shuttingDown) say(`${sig}: already stopping`);
      else void shutdown(0);
    });
  }
  // Children get process groups of their own (see SpawnOptions.ownProcessGroup): only this
  // process hears Ctrl-C, and it stops them in order.
  const ownProcessGroup = true;

  try {
    say(
      `starting the Temporal dev server on :${base.localStack.temporalPort} (UI :${base.localStack.uiPort})`,
    );
    const temporal = await startTemporalDevServer({
      port: base.localStack.temporalPort,
      uiPort: base.localStack.uiPort,
      dbFile: path.join(stateDir, 'temporal.db'),
      logDir,
      ownProcessGroup,
    });
    services.push(temporal.process);
    if (shuttingDown) return;
    say(`starting FerretDB on :${base.localStack.ferretdbPort}`);
    const ferret = await startFerretDb({
      port: base.localStack.ferretdbPort,
      dataDir: path.join(stateDir, 'ferretdb'),
      logDir,
      ownProcessGroup,
    });
    services.push(ferret.process);
    if (shuttingDown) return;

    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_UI_URL: temporal.uiUrl,
      MONGODB_URI: ferret.uri,
      VIRTFLOW_FENCE_CONFIG: localFenceConfig(stateDir),
    };
    const config = loadConfig(env);
    stackConfig = config;
    const lab = await LabNetwork.create(
      config.dataDir,
      localHosts.map((h) => h.hostId),
      `${DEMO_NETWORK.gateway}/24`,
    );
    say(
      `network namespaces ${lab.prefix}host-a, -host-b, -host-c (each host's ${LAB_UPLINK}) joined by ${lab.switchNs}`,
    );
    say('starting the controller worker and host agents host-a, host-b, host-c');
    workers.push(
      new Supervised(() =>
        spawnEntryPoint('controller', 'worker/controller.ts', [], { logDir, env, ownProcessGroup }),
      ),
    );
    for (const host of localHosts) {
      workers.push(
        new Supervised(() =>
          spawnEntryPoint(
            `agent-${host.hostId}`,
            'worker/host-agent.ts',
            hostAgentArgs(host, ['--memory', '4096', ...lab.agentArgs(host.hostId)]),
            { logDir, env, ownProcessGroup },
          ),
        ),
      );
    }

    /** The API and its console, with an administrator's token an operator can log in with. */
    const startApi = async (cfg: Config, apiEnv: NodeJS.ProcessEnv) => {
      const inv = await openInventory(cfg);
      const tokenFile = path.join(stateDir, 'admin.token');
      try {
        await ensureLocalAdminToken(inv, tokenFile);
      } finally {
        await inv.close();
      }
      workers.push(
        new Supervised(() =>
          spawnEntryPoint('api', 'server/main.ts', [], { logDir, env: apiEnv, ownProcessGroup }),
        ),
      );
      const url = `http://${cfg.api.host}:${cfg.api.port}`;
      say(
        `API and web console: ${url}/console/ (log in with the token in ${tokenFile}; \`virtflow login ${url} --token-file ${tokenFile}\`)`,
      );
    };
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
    await showDemoVm(client, config, lab);
    await startApi(config, env);
    await auditOperations(client, config).ensureSchedule(30);
    say('reconciling the inventory with the hosts every 30 s (schedule "reconcile"; `virtflow audit drift`)');
    say(`Temporal Web UI: ${temporal.uiUrl}   logs: ${logDir}`);
    say('running; press Ctrl-C to stop everything');
  } catch (err) {
    // Stopping makes the steps above fail (their services are gone): that is not a second error.
    if (shuttingDown) return;
    console.error(`virtflow: ${(err as Error).message}`);
    await shutdown(1);
  }
}

void main();
