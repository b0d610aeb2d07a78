import { z } from 'zod';
import { cpuModelSchema, DEFAULT_CPU_BASELINE } from './cpu';

/** How much of a console log one request reads: it travels in a Temporal payload. */
export const consoleBytesSchema = z
  .number()
  .int()
  .min(1)
  .max(64 * 1024);
import { nicConfigSchema } from './network';

/**
 * How a VM's guest boots and is configured on first boot. The firmware and whether the guest
 * has an agent come from its image; SSH keys and user-data from the operator. A VM keeps
 * its own copy, so it boots the same way after its image is gone (restore, HA restart).
 */

/** `bios` is SeaBIOS; `uefi` is OVMF with a per-VM copy of the UEFI variable store. */
export const firmwareSchema = z.enum(['bios', 'uefi'], { error: 'must be bios or uefi' });
export type Firmware = z.infer<typeof firmwareSchema>;

/** OVMF does not start a kernel in less (measured: 128 MiB faults in the firmware). */
export const UEFI_MIN_MEMORY_MIB = 256;

const sshKey = z
  .string()
  .max(16 * 1024, 'an SSH key is at most 16 KiB')
  .regex(
    /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]+( [^\n]*)?$/,
    'is not an OpenSSH public key (one line: type, base64 key, optional comment)',
  );

export const sshKeysSchema = z.array(sshKey).max(32, 'at most 32 SSH keys');
/** Passed to cloud-init as given (cloud-config, a script, multipart); at most 64 KiB. */
export const userDataSchema = z.string().max(64 * 1024, 'user-data is at most 64 KiB');

/** A disk's size: whole bytes, 1 MiB to 64 TiB. */
export const diskBytesSchema = z
  .number({ error: 'must be a size in bytes' })
  .int('must be a whole number of bytes')
  .min(1024 * 1024, 'must be at least 1 MiB')
  .max(64 * 1024 ** 4, 'must be at most 64 TiB');

/** A VM has at most this many data disks (vdb … vdi). */
export const MAX_DATA_DISKS = 8;

/** Empty data disks beside the root disk (vdb, vdc, …), by their size at creation. */
export const dataDisksSchema = z
  .array(diskBytesSchema)
  .max(MAX_DATA_DISKS, `at most ${MAX_DATA_DISKS} data disks`);

export const guestConfigSchema = z.object({
  firmware: firmwareSchema,
  /** The image runs a QEMU guest agent: liveness and guest details go through it. */
  guestAgent: z.boolean(),
  sshKeys: sshKeysSchema.default([]),
  userData: userDataSchema.optional(),
  /**
   * The VM's data disks as created; they move, are backed up and restored with the root disk.
   * Fixed at create time (a VM recorded before data disks existed has none).
   */
  dataDisks: dataDisksSchema.default([]),
  /** The cluster's CPU baseline when the VM was created (older VMs: qemu64). */
  cpuModel: cpuModelSchema.default(DEFAULT_CPU_BASELINE),
  /** The VM's network cards, in the order the guest sees them (eth0, eth1, …); none before networks. */
  nics: z.array(nicConfigSchema).max(8, 'at most 8 NICs').optional(),
});
export type GuestConfig = z.output<typeof guestConfigSchema>;

/** What the operator adds at create or restore time, on top of the image's boot facts. */
export const guestCustomisationSchema = guestConfigSchema.pick({ sshKeys: true, userData: true });

/** What `vm show` reports of a running guest, as its agent tells it. */
export interface GuestInfo {
  hostname: string;
  os: string;
  kernel?: string;
  agentVersion: string;
  addresses: { interface: string; mac?: string; address: string; prefix: number }[];
}
