import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { NotFoundError, parseInput } from '../../domain/errors';
import { dataPaths } from '../../domain/config';
import { importImageRequestSchema } from '../../domain/requests';
import { importImage, listImages } from '../../inventory/images';
import type { ImageDoc } from '../../inventory/schemas';
import type { CliContext } from '../context';
import { emit, printFields, printTable, type OutputOptions } from '../output';

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function imageFields(i: ImageDoc) {
  return {
    name: i._id,
    project: i.project ?? 'fleet',
    format: i.format,
    'imported-from': i.sourceFormat,
    firmware: i.firmware,
    'guest-agent': i.guestAgent ? 'yes' : 'no',
    os: i.osFamily,
    'virtual-size': mib(i.virtualSizeBytes),
    'actual-size': mib(i.actualSizeBytes),
    sha256: i.sha256,
    path: i.path,
    source: i.source,
    created: i.createdAt,
  };
}

export function registerImageCommands(program: Command, ctx: CliContext): void {
  const image = program.command('image').description('the image repository');

  image
    .command('import <file>')
    .description('import a disk image (qcow2, raw, vmdk, vhdx, vdi); stored as qcow2 by its SHA-256')
    .requiredOption('--name <name>', 'image name (DNS label)')
    .option('--format <format>', "the file's format (default: read from its header)")
    .option('--firmware <firmware>', 'how it boots: bios (SeaBIOS) or uefi (OVMF)', 'bios')
    .option('--no-guest-agent', 'the image runs no QEMU guest agent (liveness falls back to the console)')
    .option('--os <family>', 'guest OS family: linux, windows, bsd or other', 'linux')
    .option(
      '--project <name>',
      "the project whose VMs alone use it (default: the fleet's, for every project)",
    )
    .option('--json', 'print JSON')
    .action(
      async (
        file: string,
        opts: OutputOptions & {
          name: string;
          format?: string;
          firmware: string;
          guestAgent: boolean;
          os: string;
          project?: string;
        },
      ) => {
        const req = parseInput(
          importImageRequestSchema,
          {
            name: opts.name,
            file,
            format: opts.format,
            firmware: opts.firmware,
            guestAgent: opts.guestAgent,
            osFamily: opts.os,
            project: opts.project,
            maxVirtualSizeBytes: ctx.config.images.maxVirtualSizeBytes,
          },
          '',
        );
        const bar = new cliProgress.SingleBar(
          {
            format: 'import |{bar}| {percentage}% · {copied}/{total} MiB',
            hideCursor: true,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        );
        // Logged in: the file streams to the repository through the API, which imports it.
        if (ctx.api) {
          const query = new URLSearchParams({
            ...(req.format ? { format: req.format } : {}),
            firmware: req.firmware,
            guestAgent: String(req.guestAgent),
            osFamily: req.osFamily,
            ...(req.project ? { project: req.project } : {}),
          });
          const view = await ctx.api.upload<Record<string, unknown>>(
            `/v1/images/${encodeURIComponent(req.name)}?${query}`,
            file,
          );
          emit(opts, view, (v) => printFields(v));
          return;
        }
        // A bar only where it helps: big files, on a terminal, not for JSON output.
        const showBar = !opts.json && process.stderr.isTTY;
        let started = false;
        try {
          const doc = await importImage(
            await ctx.inventory(),
            dataPaths(ctx.config.dataDir).images,
            req,
            (copied, total) => {
              if (!showBar || total < 64 * 1024 * 1024) return;
              if (!started) bar.start(total, 0, { copied: 0, total: Math.round(total / 1048576) });
              started = true;
              bar.update(copied, { copied: Math.round(copied / 1048576) });
            },
          );
          emit(opts, doc, (i) => printFields(imageFields(i)));
        } finally {
          if (started) bar.stop();
        }
      },
    );

  image
    .command('list')
    .description('list images')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      if (ctx.api) {
        const views = await ctx.api.request<Record<string, unknown>[]>('GET', '/v1/images');
        emit(opts, views, (vs) =>
          printTable(
            vs.map((v) => ({ ...v, project: v.project ?? 'fleet' })),
            ['name', 'project', 'format', 'firmware', 'virtualSizeBytes', 'sha256', 'createdAt'],
          ),
        );
        return;
      }
      const images = await listImages(await ctx.inventory());
      emit(opts, images, (is) =>
        printTable(
          is.map((i) => ({ ...imageFields(i), sha256: i.sha256.slice(0, 12) })),
          ['name', 'project', 'format', 'virtual-size', 'actual-size', 'sha256', 'created'],
        ),
      );
    });

  image
    .command('show <name>')
    .description('show one image')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions) => {
      if (ctx.api) {
        const view = await ctx.api.request<Record<string, unknown>>(
          'GET',
          `/v1/images/${encodeURIComponent(name)}`,
        );
        emit(opts, view, (v) => printFields({ ...v, project: v.project ?? 'fleet' }));
        return;
      }
      const doc = await (await ctx.inventory()).images.findOne({ _id: name });
      if (!doc) throw new NotFoundError('image', name);
      emit(opts, doc, (i) => printFields(imageFields(i)));
    });
}
