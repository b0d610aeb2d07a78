import { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { MigrationProgress, MigrationResult } from '../../workflows/migration-control';
import type { CliContext } from '../context';
import { emit, type OutputOptions } from '../output';
import { apiMigrationOperations, type MigrationControls } from '../api-migration-operations';
import { vmOperations } from '../vm-operations';
import { numberArg } from './args';

const MiB = 1024 * 1024;

/**
 * Draws the migration's progress bar from its `progress` query until the run ends: bytes sent,
 * rate, dirty-sync round and phase, as QEMU reports them through the source agent.
 */
async function watchMigration(ops: MigrationControls, vmId: string, done: Promise<unknown>): Promise<void> {
  const bar = new cliProgress.SingleBar(
    {
      format: '{phase} |{bar}| {percentage}% · {sent}/{total} MiB · {rate} MiB/s · round {round} · {message}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0, { phase: 'pre-checks', sent: 0, total: 0, rate: 0, round: 0, message: '' });
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  while (!finished) {
    const p: MigrationProgress | undefined = await ops.progress(vmId).catch(() => undefined);
    if (p) {
      const s = p.stats;
      const pct =
        s && s.totalBytes > 0 ? Math.floor((100 * (s.totalBytes - s.remainingBytes)) / s.totalBytes) : 0;
      bar.update(p.phase === 'done' ? 100 : pct, {
        phase: p.phase.padEnd(16),
        sent: s ? (s.transferredBytes / MiB).toFixed(0) : 0,
        total: s ? (s.totalBytes / MiB).toFixed(0) : 0,
        rate: s ? (s.mbps / 8).toFixed(1) : 0,
        round: s?.iteration ?? 0,
        message:
          p.phase === 'transferring' || p.phase === 'post-copy' ? `${p.source} → ${p.target}` : p.message,
      });
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  bar.stop();
}

export function registerMigrationCommands(vm: Command, program: Command, ctx: CliContext): void {
  // Through the API when logged in; the progress bar reads the same progress either way.
  const ops = async (): Promise<MigrationControls> =>
    ctx.api ? apiMigrationOperations(ctx.api) : vmOperations(await ctx.client(), ctx.config);

  vm.command('migrate <vmId>')
    .description('live-migrate a running VM to another host (placement picks one unless --to)')
    .option('--to <hostId>', 'target host')
    .option('--max-bandwidth <MiB/s>', 'bandwidth cap', numberArg)
    .option('--max-downtime <ms>', 'longest pause allowed at switch-over', numberArg)
    .option('--auto-converge', 'throttle the guest when it dirties memory faster than it is sent')
    .option(
      '--post-copy',
      'allow switching to post-copy (on timeout or `op force-complete --mode post-copy`)',
    )
    .option('--timeout-per-gib <seconds>', 'completion timeout per GiB of guest memory', numberArg)
    .option('--on-timeout <action>', 'abort or force-complete when the timeout passes')
    .option('--watch', 'show a live progress bar until it ends')
    .option('--no-wait', 'return once the migration has started')
    .option('--json', 'print JSON')
    .action(
      async (
        vmId: string,
        o: OutputOptions & {
          to?: string;
          maxBandwidth?: number;
          maxDowntime?: number;
          autoConverge?: boolean;
          postCopy?: boolean;
          timeoutPerGib?: number;
          onTimeout?: 'abort' | 'force-complete';
          watch?: boolean;
          wait: boolean;
        },
      ) => {
        const client = await ops();
        const op = await client.migrate({
          vmId,
          to: o.to,
          policy: {
            maxBandwidthMiBps: o.maxBandwidth,
            maxDowntimeMs: o.maxDowntime,
            autoConverge: o.autoConverge,
            postCopy: o.postCopy,
            completionTimeoutSecPerGiB: o.timeoutPerGib,
            onTimeout: o.onTimeout,
          },
        });
        if (!o.json) console.error(`started ${op.workflowId} — ${op.url}`);
        if (!o.wait) {
          emit(o, { workflowId: op.workflowId, runId: op.runId, url: op.url }, () => undefined);
          return;
        }
        const result = op.result();
        if (o.watch && !o.json) await watchMigration(client, vmId, result);
        const r: MigrationResult = await result;
        emit(o, { ...r, workflowId: op.workflowId, runId: op.runId, url: op.url }, () =>
          console.log(
            `vm ${r.vmId} migrated ${r.source} → ${r.target} in ${(r.totalTimeMs / 1000).toFixed(1)} s, ` +
              `downtime ${r.downtimeMs ?? '?'} ms, ${(r.transferredBytes / MiB).toFixed(0)} MiB in ${r.iterations} round(s); ` +
              `guest verified alive (${r.verifiedBy === 'guest-agent' ? 'its guest agent answered on the target' : `console heartbeat ${r.verifiedHeartbeatSeq}`})` +
              (r.network
                ? `; network outage about ${r.network.outageMs ?? '?'} ms on ${r.network.networks.join(', ')} (announced ${r.network.announced})`
                : ''),
          ),
        );
      },
    );

  const op = program.command('op').description("control a VM's running operation");
  op.command('abort <vmId>')
    .description('abort a running migration; the VM stays on its source')
    .option('--reason <text>', 'recorded with the rollback')
    .action(async (vmId: string, o: { reason?: string }) =>
      console.log(await (await ops()).abortMigration(vmId, o.reason)),
    );
  op.command('force-complete <vmId>')
    .description('finish a migration now: --mode pause (stop the guest until the copy ends) or post-copy')
    .option('--mode <mode>', 'pause or post-copy', 'pause')
    .action(async (vmId: string, o: { mode: 'pause' | 'post-copy' }) =>
      console.log(await (await ops()).forceCompleteMigration(vmId, { mode: o.mode })),
    );
  op.command('set-bandwidth <vmId> <MiBps>')
    .description("change a running migration's bandwidth cap")
    .action(async (vmId: string, mibps: string) =>
      console.log(await (await ops()).setMaxBandwidth(vmId, numberArg(mibps))),
    );
  op.command('progress <vmId>')
    .description("where the VM's running operation is")
    .option('--json', 'print JSON')
    .action(async (vmId: string, o: OutputOptions) => {
      const p = await (await ops()).progress(vmId);
      emit(o, p, (x) => console.log(`${x.operation}: ${x.phase} — ${x.message}`));
    });
}
