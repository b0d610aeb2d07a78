import { Command } from 'commander';
import { ValidationError, VirtflowError } from '../domain/errors';
import { registerBackupCommands } from './commands/backup';
import { registerHostCommands } from './commands/host';
import { registerRolloutCommands } from './commands/rollout';
import { registerSimCommands } from './commands/sim';
import { registerAuditCommands } from './commands/audit';
import { registerImageCommands } from './commands/image';
import { registerLoginCommands } from './commands/login';
import { registerNetworkCommands } from './commands/network';
import { registerProjectCommands } from './commands/project';
import { registerTokenCommands } from './commands/token';
import { registerVmCommands } from './commands/vm';
import { CliContext } from './context';

/**
 * The `virtflow` CLI. Every command prints a table (or JSON with --json) and exits non-zero
 * with a one-line reason on error.
 */
export function buildCli(ctx: CliContext): Command {
  const program = new Command('virtflow')
    .description('virtflow: a Virtual Infrastructure Manager on Temporal, QEMU and MongoDB')
    .option('--direct', 'talk to MongoDB and Temporal directly, not through the API (administrators)')
    .showHelpAfterError()
    .hook('preAction', () => {
      ctx.direct = program.opts<{ direct?: boolean }>().direct === true;
    });
  registerLoginCommands(program, ctx);
  registerHostCommands(program, ctx);
  registerImageCommands(program, ctx);
  registerVmCommands(program, ctx);
  registerNetworkCommands(program, ctx);
  registerBackupCommands(program, ctx);
  registerRolloutCommands(program, ctx);
  registerSimCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerProjectCommands(program, ctx);
  registerTokenCommands(program, ctx);
  return program;
}

/** The one-line reason printed for a failed command. */
export function describeError(err: unknown): string {
  if (err instanceof ValidationError || err instanceof VirtflowError) return err.message;
  const e = err as Error & { cause?: Error & { cause?: Error } };
  // Temporal wraps a workflow's own failure: the innermost message is the operator's reason.
  const inner = e.cause?.cause ?? e.cause;
  return inner?.message ?? e.message ?? String(err);
}

/** Runs the CLI on this process's arguments. */
export async function main(): Promise<void> {
  const ctx = new CliContext();
  try {
    await buildCli(ctx).parseAsync(process.argv);
  } catch (err) {
    console.error(`virtflow: error: ${describeError(err)}`);
    process.exitCode = 1;
  } finally {
    await ctx.close();
  }
}

if (require.main === module) void main();
