import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../domain/config';
import { ManagedProcess } from './processes';

/** Runs one of virtflow's TypeScript entry points (worker/…) as its own Node process. */
export function spawnEntryPoint(
  name: string,
  file: string,
  args: string[],
  opts: { logDir: string; env?: NodeJS.ProcessEnv; ownProcessGroup?: boolean },
): ManagedProcess {
  return ManagedProcess.spawn(
    name,
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, file), ...args],
    {
      logPath: path.join(opts.logDir, `${name}.log`),
      env: opts.env,
      cwd: repoRoot,
      ownProcessGroup: opts.ownProcessGroup,
    },
  );
}

/** The three hosts of the local stack, each with its own migration port range. */
export const localHosts = ['host-a', 'host-b', 'host-c'].map((hostId, i) => ({
  hostId,
  migrationPorts: `${49200 + i * 20}-${49219 + i * 20}`,
}));

/** Arguments that start a local host agent. */
export function hostAgentArgs(host: (typeof localHosts)[number], extra: string[] = []): string[] {
  return ['--host', host.hostId, '--migration-ports', host.migrationPorts, '--cluster', 'local', ...extra];
}

/**
 * Keeps a process running: when it exits unexpectedly it is started again after a pause,
 * as systemd would restart a host's agent after a crash or a patch.
 */
export class Supervised {
  private current: ManagedProcess;
  private stopping = false;
  restarts = 0;

  constructor(private readonly start: () => ManagedProcess) {
    this.current = start();
    this.watch();
  }

  get process(): ManagedProcess {
    return this.current;
  }

  private watch(): void {
    const proc = this.current;
    void proc.waitForExit().then(() => {
      if (this.stopping || proc !== this.current) return;
      setTimeout(() => {
        if (this.stopping) return;
        this.restarts++;
        this.current = this.start();
        this.watch();
      }, 1000);
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.current.stop();
  }
}

/**
 * The local stack's fence configuration: every local host is fenced by scripts/fence-local-host
 * (its agent and guests killed and confirmed gone). Written into `dir` unless there is one
 * already (an operator may have edited it); an operator's own VIRTFLOW_FENCE_CONFIG takes precedence.
 */
export function localFenceConfig(dir: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.VIRTFLOW_FENCE_CONFIG) return env.VIRTFLOW_FENCE_CONFIG;
  const file = path.join(dir, 'fence.json');
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ default: { driver: 'local-stack' } }, null, 2) + '\n');
  return file;
}
