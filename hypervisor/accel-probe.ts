import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CPU_BASELINES, type Accel, type CpuModel } from '../domain/cpu';
import { hostQemuVersion } from './host-facts';

export interface AccelFacts {
  accel: Accel;
  /** Why: what the probe saw. */
  reason: string;
  /** The baseline models this host presents to guests under its accelerator. */
  cpuModels: CpuModel[];
}

/** The guest's init prints this once it runs (scripts/guest/init). */
const READY_MARKER = 'virtflow-guest-ready';

/**
 * Whether KVM really runs a guest here: boots the local guest disk (a throwaway snapshot) under
 * `-accel kvm` and waits for its init's marker on the serial console. `/dev/kvm` existing is
 * not enough: on some machines KVM faults inside the firmware and QEMU then waits for ever,
 * which is why the probe has a deadline and a `kvm:tcg` fallback is never used.
 */
export async function probeKvm(
  guestDisk: string,
  timeoutMs: number,
): Promise<{ ok: boolean; reason: string }> {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch (err) {
    return { ok: false, reason: `/dev/kvm is not usable: ${(err as Error).message}` };
  }
  const started = Date.now();
  const qemu = spawn(
    'qemu-system-x86_64',
    [
      ...['-accel', 'kvm', '-machine', 'pc', '-cpu', 'qemu64', '-m', '128', '-nodefaults'],
      ...['-display', 'none', '-serial', 'stdio', '-no-reboot'],
      ...['-drive', `file=${guestDisk},if=virtio,format=qcow2,snapshot=on`],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  return new Promise((resolve) => {
    const finish = (ok: boolean, reason: string) => {
      clearTimeout(timer);
      qemu.kill('SIGKILL');
      resolve({ ok, reason });
    };
    const timer = setTimeout(
      () => finish(false, `a guest under KVM did not boot within ${timeoutMs / 1000} s${firstLine(err)}`),
      timeoutMs,
    );
    qemu.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(READY_MARKER))
        finish(true, `a guest under KVM booted in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
    qemu.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('KVM internal error'))
        finish(false, `KVM faulted while booting a guest${firstLine(err)}`);
    });
    qemu.on('exit', (code) => finish(false, `QEMU under KVM exited (${code})${firstLine(err)}`));
  });
}

function firstLine(stderr: string): string {
  const line = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l && !l.includes('warning'));
  return line ? `: ${line}` : '';
}

/**
 * The baseline models QEMU can present here under `accel`: each is tried with `enforce`, which
 * refuses a model any of whose features the accelerator or the physical CPU lacks.
 */
export async function presentableCpuModels(accel: Accel): Promise<CpuModel[]> {
  const results = await Promise.all(
    CPU_BASELINES.map(async (model) => {
      const args = ['-accel', accel, '-machine', 'pc', '-nodefaults', '-display', 'none', '-S'];
      try {
        // -S and `quit` on the monitor: QEMU checks the CPU model, then exits without running.
        await runWithInput('qemu-system-x86_64', [...args, '-monitor', 'stdio', '-cpu', `${model},enforce`]);
        return model;
      } catch {
        return undefined;
      }
    }),
  );
  return results.filter((m): m is CpuModel => m !== undefined);
}

function runWithInput(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'ignore'] });
    const timer = setTimeout(() => p.kill('SIGKILL'), 10_000);
    // A QEMU that refuses the model exits before reading its input: the write then fails with
    // EPIPE, which unhandled would take the whole agent down (a fresh machine's first start).
    p.stdin.on('error', () => undefined);
    p.stdin.end('quit\n');
    p.on('error', reject);
    p.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${cmd} exited ${code}`));
    });
  });
}

/**
 * This machine's accelerator and presentable models. Probing KVM may cost its whole deadline,
 * so the result is kept machine-wide in `cacheFile` and reused while the kernel, the QEMU
 * version and /dev/kvm are the same. `forced` (an operator's choice) skips the probe.
 */
export async function hostAccel(opts: {
  cacheFile: string;
  guestDisk: string;
  forced?: Accel;
  timeoutMs?: number;
}): Promise<AccelFacts> {
  const key = { kernel: os.release(), qemu: await hostQemuVersion(), kvmDevice: fs.existsSync('/dev/kvm') };
  let probed: { accel: Accel; reason: string } | undefined;
  if (opts.forced) probed = { accel: opts.forced, reason: 'set by VIRTFLOW_ACCEL' };
  else {
    try {
      const cached = JSON.parse(fs.readFileSync(opts.cacheFile, 'utf8')) as typeof key & {
        accel: Accel;
        reason: string;
      };
      if (cached.kernel === key.kernel && cached.qemu === key.qemu && cached.kvmDevice === key.kvmDevice)
        probed = { accel: cached.accel, reason: cached.reason };
    } catch {
      // No cache yet, or an unreadable one: probe.
    }
  }
  if (!probed) {
    const kvm = await probeKvm(opts.guestDisk, opts.timeoutMs ?? 20_000);
    probed = { accel: kvm.ok ? 'kvm' : 'tcg', reason: kvm.reason };
    fs.mkdirSync(path.dirname(opts.cacheFile), { recursive: true });
    const tmp = `${opts.cacheFile}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify({ ...key, ...probed, probedAt: new Date().toISOString() }, null, 2));
    fs.renameSync(tmp, opts.cacheFile);
  }
  return { ...probed, cpuModels: await presentableCpuModels(probed.accel) };
}
