import fs from 'node:fs';
import path from 'node:path';
import { backupOperations } from '../../client/backup-operations';
import { vmOperations } from '../../client/vm-operations';
import { dataPaths, installed } from '../../domain/config';
import { readGuestFile, withGuestAgent } from '../../hypervisor/guest-agent';
import { importImage } from '../../inventory/images';
import { hostsRunning, qemuOn } from '../helpers/guests';
import { bundleWorkflows, TestStack } from '../helpers/test-stack';
import { until } from '../helpers/until';

/**
 * The real distribution image `npm run build:debian-image` builds (systemd, Debian's cloud
 * kernel, cloud-init, qemu-guest-agent, openssh-server; UEFI), run through virtflow as an
 * operator's own image: configured by its NoCloud seed, verified through its guest agent,
 * migrated and restored.
 */
describe('a Debian 12 cloud image, imported as an operator would', () => {
  let stack: TestStack;
  let vms: ReturnType<typeof vmOperations>;
  const sshKey =
    'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0vCFgkSvw2UGnC6N9bUbbWlnTLlbhVsCl8qvq3j4kN operator@virtflow';

  beforeAll(async () => {
    if (!fs.existsSync(installed.debianImage))
      throw new Error(
        `${installed.debianImage} is missing: run npm run build:debian-image (npm run test:all does)`,
      );
    stack = await TestStack.create('debian-image');
    await stack.startController(await bundleWorkflows());
    await stack.startAgents(['host-a', 'host-b'], ['--memory', '4096']);
    vms = vmOperations(stack.client, stack.config);
  });
  afterAll(() => stack.stop());

  const agentOf = (host: string, vmId: string) => qemuOn(stack.config, host).files(vmId).agentSocket;

  test('boots with UEFI, takes its hostname and SSH key from the seed, and answers through its agent', async () => {
    const keyFile = path.join(stack.config.dataDir, 'operator.pub');
    fs.writeFileSync(keyFile, `${sshKey}\n`);
    const image = await importImage(stack.inventory, dataPaths(stack.config.dataDir).images, {
      name: 'debian-12',
      file: installed.debianImage,
      firmware: 'uefi',
      osFamily: 'linux',
    });
    expect(image).toMatchObject({
      format: 'qcow2',
      sourceFormat: 'qcow2',
      firmware: 'uefi',
      guestAgent: true,
    });

    const created = await (
      await vms.create({
        vmId: 'deb-1',
        image: 'debian-12',
        memoryMiB: 768,
        host: 'host-a',
        sshKeys: [sshKey],
      })
    ).result();
    expect(created).toMatchObject({ host: 'host-a', verifiedBy: 'guest-agent' });
    const info = await vms.guestInfo('deb-1', 'host-a');
    expect(info.hostname).toBe('deb-1');
    expect(info.os).toMatch(/Debian GNU\/Linux 12/);
    // cloud-init gives the key to Debian's default user; read it back through the agent.
    const keys = await until('the SSH key in /home/debian/.ssh/authorized_keys', async () => {
      const text = await readGuestFile(agentOf('host-a', 'deb-1'), '/home/debian/.ssh/authorized_keys');
      return text.includes(sshKey) && text;
    });
    expect(keys).toContain(sshKey);
    // The next steps move and back up a settled system: cloud-init has finished its first boot.
    await until('cloud-init to finish', async () =>
      readGuestFile(agentOf('host-a', 'deb-1'), '/var/lib/cloud/instance/boot-finished'),
    );
  });

  test('a live migration is verified through the guest agent on the target', async () => {
    const moved = await (await vms.migrate({ vmId: 'deb-1', to: 'host-b' })).result();
    expect(moved).toMatchObject({ source: 'host-a', target: 'host-b', verifiedBy: 'guest-agent' });
    expect(hostsRunning(stack.config, 'deb-1', ['host-a', 'host-b'])).toEqual(['host-b']);
    // The same running system, not a new boot: the agent still answers with the same hostname.
    await withGuestAgent(agentOf('host-b', 'deb-1'), 5000, (a) => a.execute('guest-ping'));
    expect((await vms.guestInfo('deb-1', 'host-b')).hostname).toBe('deb-1');
  });

  test('an application-consistent backup restores to a VM that boots the same OS under its own name', async () => {
    const backups = backupOperations(stack.client, stack.config);
    const backup = await (await backups.run({ vmId: 'deb-1' })).result();
    expect(await stack.inventory.backups.findOne({ _id: backup.backupId })).toMatchObject({
      state: 'good',
      consistency: 'application-consistent',
    });
    // The guest was thawed after the point in time.
    expect(
      await withGuestAgent(agentOf('host-b', 'deb-1'), 5000, (a) => a.execute('guest-fsfreeze-status')),
    ).toBe('thawed');
    // Its UEFI variable store (the boot entries) was kept with the backup, as it was then.
    const sourceVars = path.join(dataPaths(stack.config.dataDir).datastore, 'deb-1.vars.fd');
    expect(fs.readFileSync(`${backup.path}.vars.fd`).equals(fs.readFileSync(sourceVars))).toBe(true);
    const restored = await (
      await backups.restore({ backupId: backup.backupId, vmId: 'deb-2', host: 'host-a' })
    ).result();
    expect(restored).toMatchObject({ host: 'host-a', verifiedBy: 'guest-agent' });
    const info = await vms.guestInfo('deb-2', 'host-a');
    expect(info.os).toMatch(/Debian GNU\/Linux 12/);
    // A new instance-id: cloud-init names the restored system after its new VM.
    expect(info.hostname).toBe('deb-2');
    expect(fs.existsSync(path.join(dataPaths(stack.config.dataDir).datastore, 'deb-2.vars.fd'))).toBe(true);
  });
});
