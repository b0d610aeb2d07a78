import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { assertPortFree, ManagedProcess } from './processes';

/**
 * The Temporal Web UI for a Temporal server that is not the dev server: the UI server
 * (github.com/temporalio/ui-server, the one the CLI embeds) built by `scripts/bootstrap
 * --cluster`, pointed at the frontend's gRPC address.
 */
export async function startTemporalUi(opts: {
  frontend: string;
  namespace: string;
  port: number;
  dir: string;
  logDir: string;
  ownProcessGroup?: boolean;
}) {
  if (!fs.existsSync(installed.temporalUi))
    throw new Error(
      `the Temporal UI server is not built (${installed.temporalUi} missing): run scripts/bootstrap --cluster`,
    );
  await assertPortFree(opts.port, 'Temporal Web UI', 'the cluster stack port');
  fs.mkdirSync(path.join(opts.dir, 'config'), { recursive: true });
  const config = {
    temporalGrpcAddress: opts.frontend,
    host: '127.0.0.1',
    port: opts.port,
    enableUi: true,
    defaultNamespace: opts.namespace,
    refreshInterval: '1m',
    cors: { allowOrigins: [`http://localhost:${opts.port}`], cookieInsecure: true },
    notifyOnNewVersion: false,
  };
  fs.writeFileSync(path.join(opts.dir, 'config', 'cluster.yaml'), JSON.stringify(config, null, 2));
  const proc = ManagedProcess.spawn(
    'Temporal UI',
    installed.temporalUi,
    ['--root', opts.dir, '--config', 'config', '--env', 'cluster', 'start'],
    { logPath: path.join(opts.logDir, 'temporal-ui.log'), ownProcessGroup: opts.ownProcessGroup },
  );
  await proc.waitForPort(opts.port, 30_000);
  return { process: proc, url: `http://localhost:${opts.port}` };
}
