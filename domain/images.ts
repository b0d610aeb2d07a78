/** Disk image formats the repository accepts; every one is stored as qcow2 after conversion. */
export const imageSourceFormats = ['qcow2', 'raw', 'vmdk', 'vhdx', 'vdi'] as const;
export type ImageSourceFormat = (typeof imageSourceFormats)[number];
