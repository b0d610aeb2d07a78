import fs from 'node:fs';
import { Client, Connection, type TLSConfig } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { Config } from '../domain/config';

/** TLS settings for a remote Temporal cluster; undefined on the local dev server. */
function tlsOptions(config: Config): TLSConfig | undefined {
  const tls = config.temporal.tls;
  if (!tls) return undefined;
  return {
    serverRootCACertificate: tls.caPath ? fs.readFileSync(tls.caPath) : undefined,
    clientCertPair:
      tls.certPath && tls.keyPath
        ? { crt: fs.readFileSync(tls.certPath), key: fs.readFileSync(tls.keyPath) }
        : undefined,
  };
}

/** The one place a Temporal client is built (CLI, tests, local stack). */
export async function connectClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({ address: config.temporal.address, tls: tlsOptions(config) });
  return new Client({ connection, namespace: config.temporal.namespace });
}

/** The one place a worker connection is built (controller and host agents). */
export function connectWorkerConnection(config: Config): Promise<NativeConnection> {
  return NativeConnection.connect({ address: config.temporal.address, tls: tlsOptions(config) });
}

/** The Web UI page of one run, printed by the CLI for every run it starts. */
export function runUrl(config: Config, workflowId: string, runId?: string): string {
  const base = `${config.temporal.uiUrl}/namespaces/${encodeURIComponent(config.temporal.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  return runId ? `${base}/${runId}/history` : base;
}
