import { ApplicationFailure } from '@temporalio/activity';
import { parseInput } from '../../domain/errors';
import { nicConfigSchema, type NicConfig } from '../../domain/network';
import { guestExec, guestInterfaces } from '../../hypervisor/guest-agent';
import { nicDevice, nicIds, nicNetdev } from '../../hypervisor/qemu-host';
import { vmFiles } from '../../hypervisor/vm-files';
import { attachNicsOnHost, type GuestActivityDeps } from './guest-activities';
import type { HotplugNicResult } from './contract';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * NICs added to and removed from a running guest: the tap on its network's bridge and a
 * virtio-net device at the NIC's own PCI slot (QMP `netdev_add`, `device_add`), and the
 * reverse. The guest's recorded spec follows, so a restarted agent and a migration see it.
 */
export function createNicActivities(deps: GuestActivityDeps) {
  const { hostId, qemu, datastoreDir } = deps;

  function requireRunning(vmId: string) {
    vmFiles(datastoreDir, vmId);
    const guest = qemu.find(vmId);
    if (!guest)
      throw ApplicationFailure.nonRetryable(`${vmId} does not run on ${hostId}`, 'InvalidStateError');
    return guest;
  }

  /** Devices QEMU has under /machine/peripheral, by id. */
  async function peripherals(vmId: string): Promise<Set<string>> {
    const qmp = await qemu.monitor(vmId);
    const children = (await qmp.execute('qom-list', { path: '/machine/peripheral' })) as { name: string }[];
    return new Set(children.map((c) => c.name));
  }

  /**
   * Gives the new interface its address through the guest agent (`guest-exec` of `ip`), once
   * the guest shows an interface with the NIC's MAC. A guest without an agent that runs
   * commands gets it from its seed's network-config at its next boot instead.
   */
  async function configureInGuest(vmId: string, nic: NicConfig): Promise<string> {
    const agent = qemu.files(vmId).agentSocket;
    const deadline = Date.now() + 30_000;
    let name: string | undefined;
    while (!name && Date.now() < deadline) {
      const found = await guestInterfaces(agent, 2000).catch(() => undefined);
      if (!found) return 'the guest agent does not answer: the guest configures it at its next boot';
      name = found.find((i) => i.mac === nic.mac)?.name;
      if (!name) await sleep(250);
    }
    if (!name)
      return `the guest shows no interface with MAC ${nic.mac} yet: it configures it at its next boot`;
    try {
      for (const args of [
        ['link', 'set', name, 'up'],
        ['addr', 'add', `${nic.ip}/${nic.prefix}`, 'dev', name],
      ]) {
        const r = await guestExec(agent, 'ip', args);
        if (r.exitCode !== 0 && !/exists/i.test(r.output))
          return `ip ${args.join(' ')} failed in the guest (${r.output.trim()}): it configures it at its next boot`;
      }
    } catch (err) {
      return `the guest agent cannot run commands (${(err as Error).message}): it configures it at its next boot`;
    }
    return `configured in the guest as ${name} ${nic.ip}/${nic.prefix} through its agent`;
  }

  return {
    async hotplugNic(req: { vmId: string; nic: NicConfig }): Promise<HotplugNicResult> {
      const nic = parseInput(nicConfigSchema, req.nic, 'nic');
      const guest = requireRunning(req.vmId);
      const [attached] = await attachNicsOnHost(deps, [nic]);
      const ids = nicIds(attached);
      const present = await peripherals(req.vmId);
      const qmp = await qemu.monitor(req.vmId);
      // A retry finds what the first attempt already did.
      if (!present.has(ids.device)) {
        await qmp.execute('netdev_add', nicNetdev(attached)).catch((err: Error) => {
          if (!/duplicate|already/i.test(err.message)) throw err;
        });
        await qmp.execute('device_add', nicDevice(attached));
      }
      const others = (guest.spec.nics ?? []).filter((n) => n.mac !== nic.mac);
      qemu.updateSpec(req.vmId, { nics: [...others, attached] });
      return { device: ids.device, tap: attached.tap, guest: await configureInGuest(req.vmId, nic) };
    },

    /**
     * Asks the guest to release the NIC (ACPI hot-unplug), waits until QEMU has removed the
     * device, then removes its tap. A guest that does not release it in time keeps it, and the
     * removal fails saying so: nothing is forgotten that still runs.
     */
    async unplugNic(req: { vmId: string; mac: string; timeoutMs?: number }): Promise<{ removed: boolean }> {
      const guest = requireRunning(req.vmId);
      const ids = nicIds({ mac: req.mac });
      const qmp = await qemu.monitor(req.vmId);
      if ((await peripherals(req.vmId)).has(ids.device)) {
        await qmp.execute('device_del', { id: ids.device }).catch((err: Error) => {
          // Asked already by an earlier attempt: wait for the guest below.
          if (!/in progress|pending/i.test(err.message)) throw err;
        });
        const deadline = Date.now() + (req.timeoutMs ?? 60_000);
        while ((await peripherals(req.vmId)).has(ids.device)) {
          if (Date.now() > deadline)
            throw ApplicationFailure.nonRetryable(
              `the guest of ${req.vmId} did not release NIC ${req.mac} within ${(req.timeoutMs ?? 60_000) / 1000} s (it must support ACPI PCI hot-unplug); the NIC stays`,
              'GuestRefusedError',
            );
          await sleep(250);
        }
      }
      await qmp.execute('netdev_del', { id: ids.netdev }).catch((err: Error) => {
        if (!/not found/i.test(err.message)) throw err;
      });
      qemu.updateSpec(req.vmId, { nics: (guest.spec.nics ?? []).filter((n) => n.mac !== req.mac) });
      return { removed: true };
    },
  };
}
