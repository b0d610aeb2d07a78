/**
 * How long simulated work takes, in modelled seconds. Durations are rounded up to whole steps
 * of `resolutionSec`: the fleet's clock then has fewer distinct moments to visit, and the
 * ideal bound a benchmark computes from this model uses the very same rounding.
 */
export interface TimingModel {
  resolutionSec: number;
  /** Migration network bandwidth when the policy sets no limit (10 GbE, less overhead). */
  linkMiBps: number;
  /** Fixed cost of a migration beyond its transfer: set-up, switch-over, verification. */
  migrationOverheadSec: number;
  /** A guest dirtying memory faster than this share of the bandwidth never converges. */
  convergenceLimit: number;
  bootSec: number;
  preflightSec: number;
  applySec: number;
  rebootSec: number;
  canarySec: number;
  postSec: number;
}

export const defaultTimingModel: TimingModel = {
  resolutionSec: 10,
  linkMiBps: 1100,
  migrationOverheadSec: 2,
  convergenceLimit: 0.8,
  bootSec: 20,
  preflightSec: 5,
  applySec: 180,
  rebootSec: 120,
  canarySec: 20,
  postSec: 5,
};

export function rounded(model: TimingModel, seconds: number): number {
  return Math.ceil(seconds / model.resolutionSec) * model.resolutionSec;
}

export interface MigrationEstimate {
  converges: boolean;
  seconds: number;
  /** Bytes sent: the first pass plus every re-sent dirty page (a geometric series). */
  transferredMiB: number;
}

/**
 * Pre-copy of `memoryMiB` at `bandwidthMiBps` while the guest dirties `dirtyMiBps`: each pass
 * re-sends what the last one let the guest dirty, so the total is memory / (1 - dirty/bandwidth).
 */
export function migrationEstimate(
  model: TimingModel,
  memoryMiB: number,
  dirtyMiBps: number,
  bandwidthMiBps = model.linkMiBps,
): MigrationEstimate {
  const ratio = dirtyMiBps / bandwidthMiBps;
  if (ratio >= model.convergenceLimit) {
    return {
      converges: false,
      seconds: rounded(model, memoryMiB / bandwidthMiBps),
      transferredMiB: memoryMiB,
    };
  }
  const transferredMiB = memoryMiB / (1 - ratio);
  return {
    converges: true,
    seconds: rounded(model, transferredMiB / bandwidthMiBps + model.migrationOverheadSec),
    transferredMiB,
  };
}

export interface SimVmLoad {
  memoryMiB: number;
  dirtyMiBps: number;
}

/**
 * One host's patch from start to back in service when it evacuates `vms` over `lanes` parallel
 * migrations: pre-flight, evacuation, apply, reboot, canary, post check. Lanes are filled
 * longest-first, the schedule an ideal evacuation would follow.
 */
export function hostPatchSeconds(model: TimingModel, vms: SimVmLoad[], lanes: number): number {
  return hostPatchSecondsOf(
    model,
    vms.map((v) => migrationEstimate(model, v.memoryMiB, v.dirtyMiBps).seconds),
    lanes,
  );
}

/** The same, from each evacuated VM's migration time. */
export function hostPatchSecondsOf(model: TimingModel, migrationSeconds: number[], lanes: number): number {
  const laneEnds = Array.from({ length: Math.max(1, lanes) }, () => 0);
  for (const t of [...migrationSeconds].sort((a, b) => b - a)) {
    const i = laneEnds.indexOf(Math.min(...laneEnds));
    laneEnds[i] += t;
  }
  return (
    rounded(model, model.preflightSec) +
    Math.max(...laneEnds) +
    rounded(model, model.applySec) +
    rounded(model, model.rebootSec) +
    rounded(model, model.canarySec) +
    rounded(model, model.postSec)
  );
}
