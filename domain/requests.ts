import { z } from 'zod';
import { nicRequestSchema, nicRequestsSchema } from './network';
import {
  dataDisksSchema,
  diskBytesSchema,
  firmwareSchema,
  guestCustomisationSchema,
  MAX_DATA_DISKS,
  type GuestConfig,
} from './guest';
import { imageSourceFormats } from './images';
import { DEFAULT_PROJECT } from './access';
import { idSchema } from './ids';
import { labelsSchema } from './labels';

/**
 * Operation requests, validated at the edge (CLI, client library) and again by the
 * workflow's first activity, so a bad request never changes state.
 */

/** The guest kernel needs at least 96 MiB; nothing here runs a guest larger than 1 TiB. */
const memoryMiB = z
  .number({ error: 'must be a number of MiB' })
  .int('must be a whole number of MiB')
  .min(96, 'must be at least 96 MiB (the guest does not boot with less)')
  .max(1024 * 1024, 'must be at most 1048576 MiB (1 TiB)');

const vcpus = z
  .number({ error: 'must be a number' })
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(64, 'must be at most 64');

export const createVmRequestSchema = z.object({
  vmId: idSchema,
  image: idSchema,
  memoryMiB: memoryMiB.default(128),
  vcpus: vcpus.default(1),
  /** Run on this host instead of letting placement choose. */
  host: idSchema.optional(),
  /** Labels a host must carry to be chosen. */
  hostLabels: labelsSchema.optional(),
  labels: labelsSchema.default({}),
  /** The project it belongs to: who may see and operate it through the API (domain/access.ts). */
  project: idSchema.default(DEFAULT_PROJECT),
  bootTimeoutSec: z.number().int().min(10).max(1800).default(180),
  /** The root disk's size; by default the image's own. Never smaller than the image. */
  diskSizeBytes: diskBytesSchema.optional(),
  /** Empty data disks to add, by size (vdb, vdc, …). */
  dataDisks: dataDisksSchema.default([]),
  /** Network cards, one per network, with the address each wants (or the pool's next free one). */
  nics: nicRequestsSchema.optional(),
  /** First-boot configuration: SSH keys for the default user and the operator's user-data. */
  ...guestCustomisationSchema.shape,
});
export type CreateVmRequest = z.input<typeof createVmRequestSchema>;
export type CreateVmSpec = z.output<typeof createVmRequestSchema>;
/** A create request once its image is known: the guest boots as the image says. */
export type ProvisionSpec = CreateVmSpec & { guest: GuestConfig };

/** A NIC added to an existing VM (`vm nic add`), live when it runs. */
export const addNicRequestSchema = z.object({
  vmId: idSchema,
  network: idSchema,
  /** The address it wants; the pool's next free one by default. */
  ip: nicRequestSchema.shape.ip,
});
export type AddNicRequest = z.input<typeof addNicRequestSchema>;

/** A VM's NIC on `network` removed (`vm nic remove`), live when it runs. */
export const removeNicRequestSchema = z.object({ vmId: idSchema, network: idSchema });
export type RemoveNicRequest = z.input<typeof removeNicRequestSchema>;

export const vmRefSchema = z.object({
  vmId: idSchema,
  bootTimeoutSec: z.number().int().min(10).max(1800).default(180),
});
export type VmRef = z.input<typeof vmRefSchema>;

export const stopVmRequestSchema = z.object({
  vmId: idSchema,
  /** How long the guest may take to power off before it is stopped by force. */
  gracefulTimeoutSec: z.number().int().min(0).max(3600).default(30),
});
export type StopVmRequest = z.input<typeof stopVmRequestSchema>;

export const deleteVmRequestSchema = stopVmRequestSchema;

export const resizeDiskRequestSchema = z.object({
  vmId: idSchema,
  /** The disk's new size; disks only grow. */
  sizeBytes: diskBytesSchema,
  /** Which disk: 0 is the root disk (the default), 1 the first data disk (vdb), and so on. */
  disk: z
    .number()
    .int('must be a whole number')
    .min(0, 'must be 0 or more')
    .max(MAX_DATA_DISKS, `must be at most ${MAX_DATA_DISKS}`)
    .default(0),
});
export type ResizeDiskRequest = z.input<typeof resizeDiskRequestSchema>;
export type DeleteVmRequest = StopVmRequest;

export const importImageRequestSchema = z.object({
  name: idSchema,
  /**
   * The project the image belongs to: only its VMs are made from it, only its readers see it.
   * Absent: a fleet image, which every project may use.
   */
  project: idSchema.optional(),
  file: z.string().min(1, 'must name a file'),
  /** The file's format; detected from its header when not given, and refused if they differ. */
  format: z.enum(imageSourceFormats, { error: `must be one of ${imageSourceFormats.join(', ')}` }).optional(),
  firmware: firmwareSchema.default('bios'),
  /** Whether the image runs a QEMU guest agent (liveness, guest details, consistent backups). */
  guestAgent: z.boolean().default(true),
  osFamily: z
    .enum(['linux', 'windows', 'bsd', 'other'], { error: 'must be linux, windows, bsd or other' })
    .default('linux'),
  /** Images whose virtual size is larger are refused. */
  maxVirtualSizeBytes: z
    .number()
    .int()
    .positive()
    .default(2 * 1024 ** 4),
});
export type ImportImageRequest = z.input<typeof importImageRequestSchema>;
export type ImportImageSpec = z.output<typeof importImageRequestSchema>;
