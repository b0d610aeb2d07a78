import type { Command } from 'commander';
import { formatBytes } from '../../domain/bytes';
import { idSchema } from '../../domain/ids';
import { parseInput } from '../../domain/errors';
import type { Quota } from '../../domain/quota';
import { projectReport, setQuota } from '../../inventory/quotas';
import type { CliContext } from '../context';
import { emit, printFields, type OutputOptions } from '../output';
import { numberArg } from './args';

/** A limit as an operator reads it: none where the quota sets none. */
const limit = (n: number | undefined, show: (n: number) => string = String) =>
  n === undefined ? 'no limit' : show(n);

/** Projects: who owns VMs, and their quotas. Through the API when logged in. */
export function registerProjectCommands(program: Command, ctx: CliContext): void {
  const project = program.command('project').description('projects: their quotas and what their VMs hold');
  const path = (name: string) => `/v1/projects/${encodeURIComponent(parseInput(idSchema, name, 'project'))}`;

  project
    .command('show <name>')
    .description("a project's quota and its VMs' usage of it")
    .option('--json', 'print JSON')
    .action(async (name: string, o: OutputOptions) => {
      const report = await ctx.read(path(name), (inv) =>
        projectReport(inv, parseInput(idSchema, name, 'project')),
      );
      emit(o, report, ({ quota: q, usage: u }) =>
        printFields({
          project: report.project,
          vms: `${u.vms} of ${limit(q.vms)}`,
          vcpus: `${u.vcpus} of ${limit(q.vcpus)}`,
          'memory-mib': `${u.memoryMiB} of ${limit(q.memoryMiB)}`,
          disk: `${formatBytes(u.diskBytes)} of ${limit(q.diskGiB, (g) => `${g} GiB`)}`,
        }),
      );
    });

  project
    .command('quota <name>')
    .description("set a project's quota as a whole: a limit not given is none (fleet admin)")
    .option('--vms <n>', 'VMs in all', numberArg)
    .option('--vcpus <n>', 'vCPUs in all', numberArg)
    .option('--memory <MiB>', 'memory in all, in MiB', numberArg)
    .option('--disk <GiB>', "disks' provisioned sizes in all, in GiB", numberArg)
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        o: OutputOptions & { vms?: number; vcpus?: number; memory?: number; disk?: number },
      ) => {
        const quota: Quota = { vms: o.vms, vcpus: o.vcpus, memoryMiB: o.memory, diskGiB: o.disk };
        const set = ctx.api
          ? await ctx.api.request<{ project: string; quota: Quota }>('PUT', `${path(name)}/quota`, quota)
          : await setQuota(await ctx.inventory(), parseInput(idSchema, name, 'project'), quota).then(
              ({ _id, updatedAt: _at, ...q }) => ({ project: _id, quota: q }),
            );
        emit(o, set, () => console.log(`quota of project ${name} set`));
      },
    );
}
