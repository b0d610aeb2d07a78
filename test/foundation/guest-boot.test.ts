import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { installed } from '../../domain/config';
import { isProcessRunning, QemuHost } from '../../hypervisor/qemu-host';
import { readGuestLog, waitForBootMarker, waitForFreshHeartbeat } from '../../hypervisor/serial-log';
import { fileConfig } from '../helpers/test-stack';

describe('a guest under qemu-system-x86_64 -accel tcg', () => {
  const { config } = fileConfig('guest-boot');
  const qemu = new QemuHost(path.join(config.dataDir, 'hosts', 'host-a'), {
    kernel: installed.guestKernel,
    initrd: installed.guestInitrd,
  });
  const disk = path.join(config.dataDir, 'smoke-disk.qcow2');

  beforeAll(() => {
    fs.mkdirSync(config.dataDir, { recursive: true });
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '64M']);
  });
  afterAll(() => qemu.kill('smoke-guest'));

  test('boots, prints its marker and a fresh heartbeat, answers QMP, and is gone after stop', async () => {
    const guest = await qemu.start({ vmId: 'smoke-guest', memoryMiB: 128, vcpus: 1, diskPath: disk });
    expect(fs.readFileSync(`/proc/${guest.pid}/cmdline`, 'utf8')).toContain('-accel\0tcg');

    await waitForBootMarker(guest.serialLog, 'smoke-guest', 60_000);
    const before = readGuestLog(guest.serialLog, 'smoke-guest');
    const fresh = await waitForFreshHeartbeat(guest.serialLog, 'smoke-guest', {
      offset: before.size,
      timeoutMs: 15_000,
    });
    expect(fresh.seq).toBeGreaterThan(before.lastHeartbeat?.seq ?? 0);

    const status = await (await qemu.monitor('smoke-guest')).command('query-status');
    expect(status).toMatchObject({ running: true, status: 'running' });
    expect(qemu.list().map((g) => g.vmId)).toEqual(['smoke-guest']);

    // The guest ignores ACPI power-down (busybox init), so a zero grace period forces `quit`.
    expect(await qemu.stop('smoke-guest', 0)).toBe('forced');
    expect(isProcessRunning(guest.pid)).toBe(false);
    expect(qemu.find('smoke-guest')).toBeUndefined();
  });
});
