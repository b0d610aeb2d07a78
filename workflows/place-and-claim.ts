import { log } from '@temporalio/workflow';
import type { PlacementDecision } from '../domain/placement';
import { inventory } from './activity-proxies';
import { isFailureOfType } from './failures';

/** Placement and the capacity claim race other operations; a lost race places again. */
const PLACEMENT_ATTEMPTS = 3;

/**
 * Chooses a host with `place` and claims the VM's capacity there, placing again when a
 * concurrent claim took the room first. Returns the host whose capacity is now held.
 */
export async function placeAndClaim(
  vm: { vmId: string; memoryMiB: number; vcpus: number },
  place: () => Promise<PlacementDecision>,
  onDecision: (decision: PlacementDecision) => void = () => undefined,
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    const decision = await place();
    const host = decision.chosen!;
    onDecision(decision);
    try {
      await inventory.claimCapacity({ hostId: host, ...vm });
      return host;
    } catch (err) {
      if (!isFailureOfType(err, 'InsufficientCapacityError') || attempt >= PLACEMENT_ATTEMPTS) throw err;
      log.info('capacity was taken by a concurrent claim; placing again', { host, attempt });
    }
  }
}
