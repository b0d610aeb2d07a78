import type { HostNetworking } from '../domain/network';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { promisify } from 'node:util';

import type { Accel, CpuModel } from '../domain/cpu';
import type { AccelFacts } from './accel-probe';

const run = promisify(execFile);

export interface HostFacts {
  hostname: string;
  vcpus: number;
  memoryMiB: number;
  cpuModel: string;
  cpuFlags: string[];
  qemuVersion: string;
  kernel: string;
  /** The accelerator guests run with here, as the agent's probe found it, and why. */
  accel: Accel;
  accelReason: string;
  /** The cluster baseline models QEMU presents to guests here (domain/cpu.ts). */
  cpuModels: CpuModel[];
  /** The uplinks this host carries networks on; absent when its agent serves no networks. */
  network?: HostNetworking;
}

/** The QEMU version, e.g. "7.2.22", as `qemu-system-x86_64 --version` prints it. */
export async function qemuVersion(binary = 'qemu-system-x86_64'): Promise<string> {
  const { stdout } = await run(binary, ['--version']);
  const m = /version (\d+\.\d+\.\d+)/.exec(stdout);
  if (!m) throw new Error(`cannot read the QEMU version from "${stdout.split('\n')[0]}"`);
  return m[1];
}

let installedQemuVersion: Promise<string> | undefined;

/**
 * This machine's QEMU version, read once per process rather than at every facts sample: QEMU
 * changes only through a patch, and a patch restarts the agent. A failed read is tried again.
 */
export function hostQemuVersion(): Promise<string> {
  installedQemuVersion ??= qemuVersion().catch((err: unknown) => {
    installedQemuVersion = undefined;
    throw err;
  });
  return installedQemuVersion;
}

function cpuFlags(): string[] {
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    return line ? line.split(':')[1].trim().split(/\s+/).sort() : [];
  } catch {
    return [];
  }
}

/** What this physical machine really is, read from the OS and QEMU, with its probed accelerator. */
export async function readHostFacts(accel: AccelFacts): Promise<HostFacts> {
  const cpus = os.cpus();
  return {
    hostname: os.hostname(),
    vcpus: cpus.length,
    memoryMiB: Math.floor(os.totalmem() / 1024 / 1024),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuFlags: cpuFlags(),
    qemuVersion: await hostQemuVersion(),
    kernel: os.release(),
    accel: accel.accel,
    accelReason: accel.reason,
    cpuModels: accel.cpuModels,
  };
}

/** Host load right now: what the metrics sampler records. */
export function readHostLoad() {
  return {
    loadAverage1m: os.loadavg()[0],
    memoryFreeMiB: Math.floor(os.freemem() / 1024 / 1024),
  };
}
