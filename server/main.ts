import fs from 'node:fs';
import { loadConfig } from '../domain/config';
import { logger } from '../domain/logger';
import { connectClient } from '../client/temporal';
import { openInventoryWhenReady } from '../inventory/db';
import { buildApiServer } from './app';

/**
 * `npm run server`: the API on VIRTFLOW_API_ADDRESS (loopback by default), HTTPS when
 * VIRTFLOW_API_TLS_CERT/KEY are set. The first token comes from `virtflow token create`, which
 * an administrator runs where the database is reachable.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const inv = await openInventoryWhenReady(config, (err) =>
    logger.warn({ err: err.message }, 'the inventory is not ready yet; retrying'),
  );
  const client = await connectClient(config);
  const tls = config.api.tls;
  const app = await buildApiServer(
    { inv, client, config },
    {
      logger: { level: config.logLevel },
      https: tls
        ? {
            cert: fs.readFileSync(tls.certPath),
            key: fs.readFileSync(tls.keyPath),
            ca: tls.clientCaPath ? fs.readFileSync(tls.clientCaPath) : undefined,
          }
        : undefined,
    },
  );
  const address = await app.listen({ host: config.api.host, port: config.api.port });
  logger.info({ address }, 'virtflow API listening');
  const stop = async () => {
    await app.close();
    await client.connection.close();
    await inv.close();
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

void main().catch((err: Error) => {
  logger.fatal({ err }, 'the API server could not start');
  process.exit(1);
});
