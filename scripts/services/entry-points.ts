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

/** The local stack's fence action: kills a host's agent and guests, and confirms they are gone. */
export const LOCAL_FENCE_COMMAND = `bash ${path.join(repoRoot, 'scripts', 'fence-local-host')}`;

/** Arguments that start a local host agent. */
export function hostAgentArgs(host: (typeof localHosts)[number], extra: string[] = []): string[] {
  return [
    '--host',
    host.hostId,
    '--migration-ports',
    host.migrationPorts,
    '--cluster',
    'local',
    '--fence',
    LOCAL_FENCE_COMMAND,
    ...extra,
  ];
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
