import fs from 'node:fs';
import path from 'node:path';
import { ensureVarsStore } from '../../hypervisor/firmware';
import { readGuestInfo, withGuestAgent } from '../../hypervisor/guest-agent';
import { waitForGuestAlive } from '../../hypervisor/guest-liveness';
import { isProcessRunning, QemuHost } from '../../hypervisor/qemu-host';
import { readGuestLog, waitForFreshHeartbeat } from '../../hypervisor/serial-log';
import { startBareGuest } from '../helpers/guests';
import { fileConfig } from '../helpers/test-stack';

describe('the local test guest under qemu-system-x86_64 -accel tcg', () => {
  const { config } = fileConfig('guest-boot');
  const qemu = new QemuHost(path.join(config.dataDir, 'hosts', 'host-a'));
  afterAll(() => {
    for (const g of qemu.list()) qemu.kill(g.vmId);
  });

  test('boots its own disk under SeaBIOS and under OVMF, takes its hostname from the seed, and its agent answers', async () => {
    const varsPath = path.join(qemu.runDir, 'uefi-guest.vars.fd');
    ensureVarsStore(varsPath);
    const [bios, uefi] = await Promise.all([
      startBareGuest(qemu, 'bios-guest'),
      startBareGuest(qemu, 'uefi-guest', { firmware: 'uefi', varsPath, memoryMiB: 256 }),
    ]);
    const argv = fs.readFileSync(`/proc/${bios.pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toContain('tcg');
    expect(argv).toContain('qemu64,enforce');
    // It boots what is on its disk: no kernel is handed to QEMU.
    expect(argv).not.toContain('-kernel');
    expect(fs.readFileSync(`/proc/${uefi.pid}/cmdline`, 'utf8')).toContain('OVMF_CODE_4M.fd');

    for (const vmId of ['bios-guest', 'uefi-guest']) {
      expect(await waitForGuestAlive(qemu, vmId, { guestAgent: true, timeoutMs: 90_000 })).toEqual({
        via: 'guest-agent',
      });
      const info = await readGuestInfo(qemu.files(vmId).agentSocket);
      expect(info).toMatchObject({ hostname: vmId, os: 'virtflow test guest (busybox)' });
      expect(info.addresses).toContainEqual({
        interface: 'lo',
        mac: '00:00:00:00:00:00',
        address: '127.0.0.1',
        prefix: 8,
      });
      // The console still carries the boot marker and heartbeats (the fallback for agentless images).
      const log = readGuestLog(qemu.files(vmId).serialLog, vmId);
      expect(log.booted).toBe(true);
      await waitForFreshHeartbeat(qemu.files(vmId).serialLog, vmId, { offset: log.size, timeoutMs: 15_000 });
    }
    // The firmware wrote its boot entries into the VM's own variable store, not the template.
    expect(fs.statSync(varsPath).size).toBeGreaterThan(0);

    const status = await (await qemu.monitor('bios-guest')).command('query-status');
    expect(status).toMatchObject({ running: true, status: 'running' });
    expect(
      qemu
        .list()
        .map((g) => g.vmId)
        .sort(),
    ).toEqual(['bios-guest', 'uefi-guest']);
  });

  test('a CPU model the host cannot present is refused by QEMU itself (enforce), not quietly trimmed', async () => {
    await expect(startBareGuest(qemu, 'sandy-guest', { cpuModel: 'SandyBridge' })).rejects.toThrow(
      /TCG doesn't support requested feature/,
    );
    expect(qemu.find('sandy-guest')).toBeUndefined();
  });

  test('a guest-shutdown through the agent powers the guest off, and its QEMU exits', async () => {
    const guest = qemu.find('bios-guest')!;
    await withGuestAgent(qemu.files('bios-guest').agentSocket, 5000, async (agent) =>
      agent.requestShutdown(),
    );
    for (let i = 0; i < 100 && isProcessRunning(guest.pid); i++) await new Promise((r) => setTimeout(r, 100));
    expect(isProcessRunning(guest.pid)).toBe(false);
    expect(await qemu.stop('bios-guest', 0)).toBe('not-running');
  });
});
