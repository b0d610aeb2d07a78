/**
 * Backup speed and incremental efficiency, in one run:
 *  1. a 1 GiB bootable qcow2 disk with 512 MiB of random data: `qemu-img convert` of it (the baseline)
 *     against a full virtflow backup of the same disk on a running VM (workflow wall time, which
 *     includes the file's `qemu-img check` and SHA-256 that the baseline does not do);
 *  2. the guest dirties a known number of MiB; the incremental backup's file size against that.
 *
 *   npx tsx bench/backup.ts [--dirty 64]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backupOperations } from '../client/backup-operations';
import { vmOperations } from '../client/vm-operations';
import { dataPaths, installed } from '../domain/config';
import { diskFill } from '../scripts/guest/workloads';
import { importImage } from '../inventory/images';
import { startBenchStack } from './bench-stack';
import { arg } from './args';

const dirtyMiB = arg('dirty', 64);
const DATA_MIB = 512;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vf-bench-backup-'));
  const stack = await startBenchStack(dir, 1);
  try {
    // The disk: the bootable guest, grown to 1 GiB, with 512 MiB of random data after its boot
    // partition (nothing for zero detection to skip).
    const raw = path.join(dir, 'disk.raw');
    sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', installed.guestDisk, raw]);
    sh('dd', [
      'if=/dev/urandom',
      `of=${raw}`,
      'bs=1M',
      'seek=64',
      `count=${DATA_MIB}`,
      'conv=notrunc',
      'status=none',
    ]);
    fs.truncateSync(raw, 1024 ** 3);
    const disk = path.join(dir, 'disk.qcow2');
    sh('qemu-img', ['convert', '-O', 'qcow2', raw, disk]);
    fs.rmSync(raw);

    // Both sides read the same stored file, each starting from a cold page cache.
    const image = await importImage(stack.inventory, dataPaths(stack.config.dataDir).images, {
      name: 'bench-disk',
      file: disk,
    });
    dropCaches();
    const t0 = Date.now();
    sh('qemu-img', ['convert', '-O', 'qcow2', image.path, path.join(dir, 'baseline.qcow2')]);
    const baselineMs = Date.now() - t0;
    const vms = vmOperations(stack.client, stack.config);
    const backups = backupOperations(stack.client, stack.config);
    // The guest waits, then writes `dirtyMiB` of random data once: after the full backup below.
    const fillAfterSec = 40;
    await (
      await vms.create({
        vmId: 'bench-bk',
        image: 'bench-disk',
        userData: diskFill(dirtyMiB, fillAfterSec),
      })
    ).result();
    dropCaches();
    const t1 = Date.now();
    const full = await (await backups.run({ vmId: 'bench-bk' })).result();
    const fullMs = Date.now() - t1;

    const log = path.join(dataPaths(stack.config.dataDir).hostDir('host-a'), 'bench-bk.serial.log');
    for (let i = 0; !fs.readFileSync(log, 'latin1').includes('virtflow-diskfill-done'); i++) {
      if (i > 600) throw new Error('the guest did not finish dirtying its disk');
      await new Promise((r) => setTimeout(r, 250));
    }
    const inc = await (await backups.run({ vmId: 'bench-bk' })).result();
    if (inc.kind !== 'incremental')
      throw new Error(`expected an incremental backup, got ${inc.kind}: ${inc.fullReason}`);
    const dataBytes = DATA_MIB * 1024 * 1024;
    const rate = (ms: number) => dataBytes / 1024 / 1024 / (ms / 1000);
    console.log(`backup of a 1 GiB disk holding ${DATA_MIB} MiB of data`);
    console.log(`  qemu-img convert:        ${baselineMs} ms, ${rate(baselineMs).toFixed(0)} MiB/s`);
    console.log(
      `  virtflow full backup:    ${fullMs} ms wall (${full.durationMs} ms on the host), ${rate(fullMs).toFixed(0)} MiB/s`,
    );
    console.log(
      `  ratio virtflow/qemu-img: ${(rate(fullMs) / rate(baselineMs)).toFixed(2)} (wall), ${(rate(full.durationMs) / rate(baselineMs)).toFixed(2)} (host)`,
    );
    console.log(
      `  copy alone (blockdev-backup job): ${full.copyMs} ms, ${rate(full.copyMs).toFixed(0)} MiB/s, ratio ${(rate(full.copyMs) / rate(baselineMs)).toFixed(2)}`,
    );
    console.log(`incremental after the guest dirtied ${dirtyMiB} MiB`);
    console.log(
      `  incremental file ${(inc.sizeBytes / 1024 / 1024).toFixed(1)} MiB; written/dirtied ${(inc.sizeBytes / (dirtyMiB * 1024 * 1024)).toFixed(3)}`,
    );
  } finally {
    await stack.stop().catch(() => undefined);
    for (const pidfile of findPidfiles(dir)) {
      try {
        process.kill(Number(fs.readFileSync(pidfile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (!process.env.BENCH_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Empties the page cache (root only), so neither side reads what the other just read. */
function dropCaches(): void {
  try {
    execFileSync('sync');
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    console.log('  (cannot drop the page cache without root: figures are warm-cache)');
  }
}

function findPidfiles(dir: string): string[] {
  const hosts = path.join(dir, 'data', 'hosts');
  if (!fs.existsSync(hosts)) return [];
  return fs.readdirSync(hosts).flatMap((h) =>
    fs
      .readdirSync(path.join(hosts, h))
      .filter((f) => f.endsWith('.pid'))
      .map((f) => path.join(hosts, h, f)),
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
