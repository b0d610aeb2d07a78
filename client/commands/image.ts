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
    format: i.format,
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
    .description('import a qcow2 or raw image file, stored by its SHA-256')
    .requiredOption('--name <name>', 'image name (DNS label)')
    .option('--json', 'print JSON')
    .action(async (file: string, opts: OutputOptions & { name: string }) => {
      const req = parseInput(importImageRequestSchema, { name: opts.name, file }, '');
      const doc = await importImage(await ctx.inventory(), dataPaths(ctx.config.dataDir).images, req);
      emit(opts, doc, (i) => printFields(imageFields(i)));
    });

  image
    .command('list')
    .description('list images')
    .option('--json', 'print JSON')
    .action(async (opts: OutputOptions) => {
      const images = await listImages(await ctx.inventory());
      emit(opts, images, (is) =>
        printTable(
          is.map((i) => ({ ...imageFields(i), sha256: i.sha256.slice(0, 12) })),
          ['name', 'format', 'virtual-size', 'actual-size', 'sha256', 'created'],
        ),
      );
    });

  image
    .command('show <name>')
    .description('show one image')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: OutputOptions) => {
      const doc = await (await ctx.inventory()).images.findOne({ _id: name });
      if (!doc) throw new NotFoundError('image', name);
      emit(opts, doc, (i) => printFields(imageFields(i)));
    });
}
