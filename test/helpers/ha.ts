import { auditOperations } from '../../client/audit-operations';
import { vmOperations } from '../../client/vm-operations';
import { GUEST_IMAGE } from './guests';
import type { HostAgentHandle, TestStack } from './test-stack';

/** Agents heartbeat every second here, so a host is lost 3 s after its agent stops answering. */
export const FAST_FACTS = ['--facts-interval', '1'];

/** The steps HA tests share: reconcile passes, HA VMs on a chosen host, frozen agents. */
export function haSteps(stack: TestStack) {
  const audit = auditOperations(stack.client, stack.config);
  const vms = vmOperations(stack.client, stack.config);
  const pass = async () => (await audit.run()).result();
  return {
    vms,
    pass,
    /** Reconciles until a pass hands `hostId` to HA, as the schedule would every interval. */
    async passUntilLost(hostId: string) {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const r = await pass();
        if (r.lostHosts.includes(hostId)) return stack.client.workflow.getHandle(`host/${hostId}`);
        if (Date.now() > deadline) throw new Error(`${hostId} was not found lost within 30 s`);
        await new Promise((res) => setTimeout(res, 500));
      }
    },
    async createOn(vmId: string, host: string, priority?: number) {
      await (await vms.create({ vmId, image: GUEST_IMAGE, host })).result();
      if (priority !== undefined) await (await vms.setHa({ vmId, priority })).result();
    },
    /** An agent frozen with SIGSTOP: it no longer answers, but its process (and guests) still run. */
    freeze(agent: HostAgentHandle) {
      agent.process.child.kill('SIGSTOP');
    },
  };
}
