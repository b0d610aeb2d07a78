import fs from 'node:fs';
import type { Firmware } from '../domain/guest';

/** Debian's `ovmf` package: the 4 MiB build, whose variable store fits modern guests' boot entries. */
export const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
export const OVMF_VARS_TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.fd';

/** QEMU arguments for a guest's firmware; SeaBIOS is QEMU's default and needs none. */
export function firmwareArgs(firmware: Firmware, varsPath: string | undefined): string[] {
  if (firmware === 'bios') return [];
  if (!varsPath) throw new Error('a UEFI guest needs its own variable store');
  return [
    '-drive',
    `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
    '-drive',
    `if=pflash,format=raw,unit=1,file=${varsPath}`,
  ];
}

/**
 * Gives a UEFI VM its own variable store, copied from OVMF's template the first time: the
 * guest writes its boot entries there, and it lives on the datastore beside the disk so it
 * moves with the VM and is backed up with it. Never overwritten once it exists.
 */
export function ensureVarsStore(varsPath: string): void {
  if (fs.existsSync(varsPath)) return;
  if (!fs.existsSync(OVMF_VARS_TEMPLATE))
    throw new Error(
      `UEFI firmware is not installed on this host (${OVMF_VARS_TEMPLATE} is missing; Debian: ovmf)`,
    );
  const partial = `${varsPath}.partial-${process.pid}`;
  fs.copyFileSync(OVMF_VARS_TEMPLATE, partial);
  fs.renameSync(partial, varsPath);
}
