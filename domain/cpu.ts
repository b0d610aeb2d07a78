import { z } from 'zod';

/**
 * How a host runs guests, and which CPU its guests see. A host uses KVM only where its agent
 * proved KVM boots a guest (hypervisor/accel-probe.ts), TCG elsewhere. A cluster has a CPU
 * baseline (as vSphere's EVC): every VM gets that named model, so any host of the cluster that
 * can present it can take the VM's migration stream, whatever its physical CPU.
 */

export const accelSchema = z.enum(['kvm', 'tcg'], { error: 'must be kvm or tcg' });
export type Accel = z.infer<typeof accelSchema>;

/** QEMU's named x86 models a baseline may be, oldest first. */
export const CPU_BASELINES = [
  'qemu64',
  'Nehalem',
  'Westmere',
  'SandyBridge',
  'IvyBridge',
  'Haswell-noTSX',
  'Broadwell-noTSX',
  'Skylake-Client-noTSX-IBRS',
  'Cascadelake-Server-noTSX',
  'EPYC',
  'EPYC-Rome',
] as const;

export const cpuModelSchema = z.enum(CPU_BASELINES, {
  error: `must be one of ${CPU_BASELINES.join(', ')}`,
});
export type CpuModel = z.infer<typeof cpuModelSchema>;

/** Every host can present it, under TCG or KVM: the baseline of a cluster that names none. */
export const DEFAULT_CPU_BASELINE: CpuModel = 'qemu64';
