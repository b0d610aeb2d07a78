import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { assertPortFree, ManagedProcess } from './processes';

/**
 * Debian's Prometheus, scraping the cluster stack's endpoints on loopback every two seconds:
 * each worker process (virtflow's metrics and the SDK's) and the Temporal server.
 */
export async function startPrometheus(opts: {
  port: number;
  dir: string;
  logDir: string;
  /** Job name to `host:port` targets. */
  jobs: Record<string, string[]>;
  ownProcessGroup?: boolean;
}) {
  if (!fs.existsSync(installed.prometheus))
    throw new Error(
      `Prometheus is not installed (${installed.prometheus} missing): run scripts/bootstrap --cluster`,
    );
  await assertPortFree(opts.port, 'Prometheus', 'the cluster stack port');
  fs.mkdirSync(opts.dir, { recursive: true });
  const configFile = path.join(opts.dir, 'prometheus.yml');
  const config = {
    global: { scrape_interval: '2s', evaluation_interval: '2s' },
    scrape_configs: Object.entries(opts.jobs).map(([job, targets]) => ({
      job_name: job,
      static_configs: [{ targets }],
    })),
  };
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  const proc = ManagedProcess.spawn(
    'Prometheus',
    installed.prometheus,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(opts.dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${opts.port}`,
    ],
    { logPath: path.join(opts.logDir, 'prometheus.log'), ownProcessGroup: opts.ownProcessGroup },
  );
  await proc.waitForPort(opts.port, 30_000);
  const url = `http://127.0.0.1:${opts.port}`;
  return {
    process: proc,
    url,
    /** An instant query through the HTTP API: each series' labels and value. */
    async query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data?: { result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (body.status !== 'success') throw new Error(`Prometheus query ${expr} failed: ${body.error}`);
      return (body.data?.result ?? []).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
  };
}
