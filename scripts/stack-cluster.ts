/**
 * `npm run stack:cluster`: virtflow in the shape of a production deployment, on one machine.
 * PostgreSQL (a private cluster under .virtflow/cluster), the Temporal server on it with its
 * Web UI, the inventory through FerretDB's PostgreSQL backend, two controller workers, three
 * host agents and Prometheus scraping them all. The CLI's defaults reach it (Temporal on :7233,
 * the inventory on :27017), so `npx virtflow …` works beside it as with `npm start`. Creates one
 * VM to show it works, then runs until Ctrl-C.
 */
import path from 'node:path';
import { connectClient, runUrl } from '../client/temporal';
import { vmOperations } from '../client/vm-operations';
import { dataPaths, installed, loadConfig } from '../domain/config';
import { openInventory } from '../inventory/db';
import { importImage } from '../inventory/images';
import { ClusterStack } from './services/cluster-stack';
import { ManagedProcess } from './services/processes';

const say = (msg: string) => console.log(`virtflow cluster: ${msg}`);

async function main(): Promise<void> {
  const base = loadConfig();
  const dir = path.join(base.localStack.stateDir, 'cluster');
  say(
    `starting PostgreSQL, the Temporal server, FerretDB, Prometheus, 2 controllers and 3 host agents (state in ${dir})`,
  );
  const stack = await ClusterStack.start(dir, {
    ui: true,
    ownProcessGroup: true,
    ports: {
      temporal: base.localStack.temporalPort,
      ui: base.localStack.uiPort,
      ferret: base.localStack.ferretdbPort,
      postgres: Number(process.env.VIRTFLOW_POSTGRES_PORT ?? 55432),
      prometheus: Number(process.env.VIRTFLOW_PROMETHEUS_PORT ?? 9090),
    },
  });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping …');
    await stack.stop().catch((err: unknown) => say(`while stopping: ${(err as Error).message}`));
    await ManagedProcess.stopAll();
    say(
      'stopped (guests keep running; `npx virtflow vm stop` them first, or they are re-adopted at the next start)',
    );
    process.exit(0);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop());

  const client = await connectClient(stack.config);
  const inv = await openInventory(stack.config);
  try {
    await importImage(inv, dataPaths(stack.config.dataDir).images, {
      name: 'debian-busybox',
      file: installed.guestDisk,
    });
    if (!(await inv.vms.findOne({ _id: 'cluster-demo' }))) {
      const op = await vmOperations(client, stack.config).create({
        vmId: 'cluster-demo',
        image: 'debian-busybox',
        memoryMiB: 128,
      });
      say(`creating vm cluster-demo: ${runUrl(stack.config, op.workflowId)}`);
      const created = await op.result();
      say(`vm cluster-demo runs on ${created.host}`);
    }
  } finally {
    await inv.close();
  }
  say(`Temporal frontend ${stack.config.temporal.address}, Web UI ${stack.config.temporal.uiUrl}`);
  say(`inventory ${stack.config.mongo.uri} (FerretDB on PostgreSQL :${stack.ports.postgres})`);
  say(`Prometheus ${stack.prometheus.url} (try: sum by (kind) (virtflow_operations_started_total))`);
  say(`logs in ${stack.logDir}; press Ctrl-C to stop`);
}

main().catch(async (err: unknown) => {
  console.error(`virtflow cluster: ${(err as Error).message}`);
  await ManagedProcess.stopAll();
  process.exit(1);
});
