import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_CPU_BASELINE, type Accel, type CpuModel } from '../domain/cpu';
import type { Firmware } from '../domain/guest';
import { firmwareArgs } from './firmware';
import type { GuestNic } from './host-network';
import { QmpClient } from './qmp';

export interface GuestSpec {
  vmId: string;
  memoryMiB: number;
  vcpus: number;
  firmware: Firmware;
  /** The root disk, then any data disks, in the order the guest sees them (vda, vdb, …). */
  disks: string[];
  /** The NoCloud seed, attached read-only after the disks. */
  seedPath: string;
  /** The VM's own UEFI variable store (uefi only). */
  varsPath?: string;
  /** Start paused, waiting for an incoming migration (`-incoming defer`). */
  incoming?: boolean;
  /** The cluster's baseline CPU model (absent in older specs: qemu64). */
  cpuModel?: CpuModel;
  /** virtio-net NICs, each on a tap the host's tap helper opens on its network's bridge. */
  nics?: GuestNic[];
}

export interface GuestProcess {
  vmId: string;
  pid: number;
  spec: GuestSpec;
  qmpSocket: string;
  serialLog: string;
}

/**
 * A NIC's QEMU ids and PCI address come from its MAC and slot, never from its position: NICs
 * are added and removed live, and a migration's destination must lay them out as the source has.
 */
export const nicIds = (nic: Pick<GuestNic, 'mac'>) => {
  const suffix = nic.mac.split(':').slice(3).join('');
  return { netdev: `net-${suffix}`, device: `nic-${suffix}` };
};
/** Slots 0x18-0x1f of the PCI bus: far above the ones QEMU hands out to the other devices. */
const NIC_PCI_SLOT_BASE = 0x18;

/** The NIC's tap backend, as `netdev_add` arguments (and, through `qemuOptions`, `-netdev`). */
export function nicNetdev(nic: GuestNic) {
  return { type: 'tap', id: nicIds(nic).netdev, br: nic.bridge, helper: nic.helper };
}

/** The NIC's device, as `device_add` arguments (and, through `qemuOptions`, `-device`). */
export function nicDevice(nic: GuestNic) {
  const ids = nicIds(nic);
  return {
    driver: 'virtio-net-pci',
    netdev: ids.netdev,
    mac: nic.mac,
    id: ids.device,
    addr: `0x${(NIC_PCI_SLOT_BASE + nic.slot).toString(16)}`,
  };
}

/**
 * QMP arguments as a command-line option: the first value bare (`tap`, `virtio-net-pci`), the
 * rest `key=value`; a comma inside a value is written twice, as QEMU's option syntax wants.
 */
function qemuOptions(args: Record<string, string>): string {
  const escape = (v: string) => v.replaceAll(',', ',,');
  const [[, first], ...rest] = Object.entries(args);
  return [escape(first), ...rest.map(([k, v]) => `${k}=${escape(v)}`)].join(',');
}

/** True while `pid` runs. A zombie counts as gone: an orphaned guest may wait for a reaper. */
export function isProcessRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** True when `pid` is the QEMU process writing `pidfile` (guards against a recycled pid). */
function isGuestProcess(pid: number, pidfile: string): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv[0].includes('qemu-system') && argv.includes(pidfile);
  } catch {
    return false;
  }
}

/**
 * The QEMU processes of one host. Guests are daemonized with a pidfile, a QMP socket and a
 * serial log in the host's run directory, so they outlive the agent that started them and a
 * restarted agent re-adopts them from those files. The only place QEMU is spawned.
 */
export class QemuHost {
  private monitors = new Map<string, QmpClient>();

  /**
   * `accel`: how this host runs every guest it starts (VMs, migration destinations, canaries),
   * as its agent's probe found (hypervisor/accel-probe.ts); TCG unless told.
   */
  constructor(
    readonly runDir: string,
    private readonly accel: Accel = 'tcg',
  ) {
    fs.mkdirSync(runDir, { recursive: true });
  }

  files(vmId: string) {
    return {
      pidfile: path.join(this.runDir, `${vmId}.pid`),
      qmpSocket: path.join(this.runDir, `${vmId}.qmp`),
      /** The guest agent's virtio-serial channel (org.qemu.guest_agent.0). */
      agentSocket: path.join(this.runDir, `${vmId}.qga`),
      /** The serial console: a socket `vm console` attaches to, and its log (hypervisor/console-log.ts). */
      consoleSocket: path.join(this.runDir, `${vmId}.console`),
      serialLog: path.join(this.runDir, `${vmId}.serial.log`),
      spec: path.join(this.runDir, `${vmId}.json`),
      /** Where QEMU writes a screenshot before the agent reads it back and removes it. */
      screenshot: path.join(this.runDir, `${vmId}.screen.png`),
    };
  }

  private args(spec: GuestSpec): string[] {
    const f = this.files(spec.vmId);
    const args = [
      '-name',
      spec.vmId,
      // KVM only where the agent's probe booted a guest with it; never a kvm:tcg fallback, which
      // picks KVM on machines where /dev/kvm exists but faults, and hangs.
      '-accel',
      this.accel,
      // A fixed machine and the cluster's baseline CPU, so every host of the cluster can take
      // every guest's migration stream. `enforce`: a host that cannot present a feature of the
      // model refuses to start the guest rather than quietly give it less.
      '-machine',
      'pc',
      '-cpu',
      `${spec.cpuModel ?? DEFAULT_CPU_BASELINE},enforce`,
      '-m',
      String(spec.memoryMiB),
      '-smp',
      String(spec.vcpus),
      '-nodefaults',
      '-nographic',
      '-display',
      'none',
      // A standard VGA card: the guest's screen, which `vm screenshot` captures (QMP screendump).
      '-device',
      'VGA',
      ...firmwareArgs(spec.firmware, spec.varsPath),
      '-chardev',
      `socket,id=serial0,path=${f.consoleSocket},server=on,wait=off,logfile=${f.serialLog},logappend=on`,
      '-serial',
      'chardev:serial0',
      '-qmp',
      `unix:${f.qmpSocket},server=on,wait=off`,
      ...spec.disks.flatMap((disk, i) => [
        '-blockdev',
        `driver=qcow2,node-name=disk${i},file.driver=file,file.filename=${disk}`,
        '-device',
        `virtio-blk-pci,drive=disk${i},id=vdisk${i}`,
      ]),
      ...(spec.nics ?? []).flatMap((nic) => [
        '-netdev',
        qemuOptions(nicNetdev(nic)),
        '-device',
        qemuOptions(nicDevice(nic)),
      ]),
      '-blockdev',
      `driver=raw,node-name=seed,read-only=on,file.driver=file,file.filename=${spec.seedPath}`,
      '-device',
      'virtio-blk-pci,drive=seed,id=vseed',
      '-chardev',
      `socket,id=qga0,path=${f.agentSocket},server=on,wait=off`,
      '-device',
      'virtio-serial-pci,id=vserial0',
      '-device',
      'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-daemonize',
      '-pidfile',
      f.pidfile,
    ];
    if (spec.incoming) args.push('-incoming', 'defer');
    return args;
  }

  /** Starts a guest and returns once QEMU has daemonized and its QMP socket answers. */
  async start(spec: GuestSpec): Promise<GuestProcess> {
    const existing = this.find(spec.vmId);
    if (existing) throw new Error(`a QEMU process for ${spec.vmId} is already running (pid ${existing.pid})`);
    const f = this.files(spec.vmId);
    for (const stale of [
      f.pidfile,
      f.qmpSocket,
      f.agentSocket,
      f.consoleSocket,
      f.serialLog,
      `${f.serialLog}.1`,
    ])
      fs.rmSync(stale, { force: true });
    fs.writeFileSync(f.spec, JSON.stringify(spec, null, 2));

    const stderr = await new Promise<string>((resolve, reject) => {
      const child = spawn('qemu-system-x86_64', this.args(spec), { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      // With -daemonize the launcher exits once the guest is set up (or failed to be).
      child.once('exit', (code) =>
        code === 0 ? resolve(err) : reject(new Error(`QEMU failed to start ${spec.vmId}: ${err.trim()}`)),
      );
    });
    const guest = this.find(spec.vmId);
    if (!guest)
      throw new Error(`QEMU exited without leaving a running guest for ${spec.vmId}: ${stderr.trim()}`);
    await this.monitor(spec.vmId);
    return guest;
  }

  /** The running guest of `vmId` on this host, from its pidfile and /proc. */
  find(vmId: string): GuestProcess | undefined {
    const f = this.files(vmId);
    let pid: number;
    try {
      pid = Number(fs.readFileSync(f.pidfile, 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!pid || !isProcessRunning(pid) || !isGuestProcess(pid, f.pidfile)) return undefined;
    let spec: GuestSpec;
    try {
      spec = JSON.parse(fs.readFileSync(f.spec, 'utf8')) as GuestSpec;
    } catch {
      return undefined;
    }
    return { vmId, pid, spec, qmpSocket: f.qmpSocket, serialLog: f.serialLog };
  }

  /** Every guest running on this host, found from the run directory. */
  list(): GuestProcess[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.runDir);
    } catch {
      return [];
    }
    return names
      .filter((n) => n.endsWith('.pid'))
      .map((n) => this.find(n.slice(0, -'.pid'.length)))
      .filter((g): g is GuestProcess => g !== undefined);
  }

  /** The guest's QMP connection, opened once and reopened if QEMU or the agent dropped it. */
  async monitor(vmId: string): Promise<QmpClient> {
    const cached = this.monitors.get(vmId);
    if (cached && !cached.isClosed) return cached;
    const guest = this.find(vmId);
    if (!guest) throw new Error(`no running QEMU process for ${vmId} on this host`);
    const client = await QmpClient.connect(guest.qmpSocket);
    client.on('close', () => this.monitors.delete(vmId));
    this.monitors.set(vmId, client);
    return client;
  }

  /**
   * Stops a guest: ACPI power-down first, then `quit` after `gracefulMs`, then SIGKILL.
   * Returns how it ended so the caller can record it.
   */
  async stop(vmId: string, gracefulMs: number): Promise<'not-running' | 'graceful' | 'forced' | 'killed'> {
    const guest = this.find(vmId);
    if (!guest) {
      this.cleanup(vmId);
      return 'not-running';
    }
    let how: 'graceful' | 'forced' | 'killed' = 'graceful';
    try {
      const qmp = await this.monitor(vmId);
      if (gracefulMs > 0) await qmp.command('system_powerdown');
      if (!(await this.waitForExit(guest.pid, gracefulMs))) {
        how = 'forced';
        await qmp.command('quit').catch(() => undefined); // QEMU may close the socket before replying
      }
    } catch {
      how = 'forced';
    }
    if (!(await this.waitForExit(guest.pid, 5000))) {
      how = 'killed';
      process.kill(guest.pid, 'SIGKILL');
      await this.waitForExit(guest.pid, 5000);
    }
    this.cleanup(vmId);
    return how;
  }

  /** The guest's screen as a PNG, through QMP `screendump`. */
  async screendump(vmId: string): Promise<Buffer> {
    const file = this.files(vmId).screenshot;
    try {
      await (await this.monitor(vmId)).execute('screendump', { filename: file, format: 'png' });
      return fs.readFileSync(file);
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  /** Grows a running guest's disk (0 is the root); the guest sees the new capacity at once. */
  async growDisk(vmId: string, disk: number, sizeBytes: number): Promise<void> {
    await (await this.monitor(vmId)).execute('block_resize', { 'node-name': `disk${disk}`, size: sizeBytes });
  }

  /** Rewrites a running guest's recorded spec (an incoming guest becomes an ordinary one). */
  updateSpec(vmId: string, patch: Partial<GuestSpec>): void {
    const guest = this.find(vmId);
    if (!guest) throw new Error(`no running QEMU process for ${vmId} on this host`);
    fs.writeFileSync(this.files(vmId).spec, JSON.stringify({ ...guest.spec, ...patch }, null, 2));
  }

  /** Kills a guest at once (a failed incoming migration, a fenced host). */
  kill(vmId: string): void {
    const guest = this.find(vmId);
    if (guest) process.kill(guest.pid, 'SIGKILL');
    this.cleanup(vmId);
  }

  /**
   * Kills a guest and returns only once its process is gone, by its pid: the pidfile says
   * nothing after `kill()` removed it. Throws if the process outlives `timeoutMs` (a QEMU stuck
   * in the kernel on storage I/O), so no caller resumes a second copy while it might still write.
   */
  async killConfirmed(vmId: string, timeoutMs = 5000): Promise<{ killed: boolean }> {
    const guest = this.find(vmId);
    if (!guest) {
      this.cleanup(vmId);
      return { killed: false };
    }
    process.kill(guest.pid, 'SIGKILL');
    if (!(await this.waitForExit(guest.pid, timeoutMs)))
      throw new Error(`QEMU of ${vmId} (pid ${guest.pid}) still runs ${timeoutMs / 1000} s after SIGKILL`);
    this.cleanup(vmId);
    return { killed: true };
  }

  /** Forgets the runtime files of a guest that no longer runs; keeps the serial log for diagnosis. */
  private cleanup(vmId: string): void {
    this.monitors.get(vmId)?.close();
    this.monitors.delete(vmId);
    const f = this.files(vmId);
    for (const file of [f.pidfile, f.qmpSocket, f.agentSocket, f.consoleSocket, f.spec])
      fs.rmSync(file, { force: true });
  }

  private async waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (isProcessRunning(pid)) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
    return true;
  }

  /** Drops QMP connections without touching the guests (agent shutdown). */
  disconnectAll(): void {
    for (const client of this.monitors.values()) client.close();
    this.monitors.clear();
  }
}
