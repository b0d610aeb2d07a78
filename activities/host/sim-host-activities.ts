import { ApplicationFailure, Context } from '@temporalio/activity';
import { newTracker } from '../../domain/convergence';
import type { MigrationStats } from '../../domain/migration';
import { PREFLIGHT_SKIP } from '../../domain/patch';
import {
  simHostFacts,
  type SimFleet,
  type SimGuest,
  type SimHost,
  type SimMigration,
  type SimSpan,
} from '../../hypervisor/sim/sim-fleet';
import { migrationEstimate, rounded } from '../../hypervisor/sim/timing-model';
import type { HostOperation, RequestOf, RoutedHostContract } from './contract';
import { readPatchDefinition } from './patch-activities';

/** Every call on the shared queue `host/sim` names the host it is for (the workflow adds it). */
type Routed<K extends HostOperation> = RequestOf<K> & { hostId: string };

export interface SimHostActivityDeps {
  fleet: SimFleet;
  /** Records a restarted agent in the inventory, as a real agent's registration does. */
  recordRestart: (hostId: string, agent: { pid: number; patchLevel: string }) => Promise<void>;
  /** Keeps a host's modelled span out of service, for forecasts. */
  recordSpan: (span: Required<SimSpan>) => Promise<void>;
}

const MiB = 1024 * 1024;

function invalidState(message: string): never {
  throw ApplicationFailure.nonRetryable(message, 'InvalidStateError');
}

function unsupported(what: string): never {
  throw ApplicationFailure.nonRetryable(
    `${what} is not modelled by the simulated hypervisor; use a QEMU host`,
    'UnsupportedError',
  );
}

/**
 * Waits `seconds` of modelled time, heartbeating in real time so Temporal knows the activity
 * lives, and stopping at once when the activity is cancelled.
 */
async function modelled(fleet: SimFleet, seconds: number): Promise<void> {
  const ctx = Context.current();
  const beat = setInterval(() => ctx.heartbeat({ simSec: fleet.clock.now() }), 1000);
  try {
    await fleet.clock.sleep(seconds, ctx.cancellationSignal);
  } finally {
    clearInterval(beat);
  }
}

function statsOf(m: SimMigration, now: number, status: string): MigrationStats {
  const total = m.transferredMiB * MiB;
  const share = Math.min(1, (now - m.startedSec) / Math.max(1, m.endSec - m.startedSec));
  return {
    status,
    transferredBytes: Math.round(total * share),
    remainingBytes: Math.round(total * (1 - share)),
    totalBytes: total,
    dirtyPagesRate: 0,
    iteration: 1,
    expectedDowntimeMs: null,
    mbps: m.bandwidthMiBps * 8,
    elapsedMs: (now - m.startedSec) * 1000,
    downtimeMs: status === 'completed' ? 50 : null,
    downtimeLimitMs: 300,
    bandwidthMiBps: m.bandwidthMiBps,
  };
}

/**
 * The host-agent activity interface over the simulated fleet: the same calls, arguments and
 * results as the QEMU agent, with the same refusals (quitting a running source, adopting a
 * guest that is not there), and durations from the timing model on the fleet's virtual clock.
 */
export function createSimHostActivities({
  fleet,
  recordRestart,
  recordSpan,
}: SimHostActivityDeps): RoutedHostContract {
  const { model, clock } = fleet;
  const guestOn = (host: SimHost, vmId: string): SimGuest | undefined => host.guests.get(vmId);

  return {
    async reportHost(req?: { hostId: string }) {
      const host = await fleet.host(req!.hostId);
      return {
        hostId: host.hostId,
        facts: simHostFacts(host.hostId, 262_144),
        patchLevel: host.patchLevel,
        load: { loadAverage1m: 0, memoryFreeMiB: 0 },
        guests: [...host.guests.values()].map((g) => ({
          vmId: g.vmId,
          pid: g.pid,
          status: g.status,
          memoryMiB: g.memoryMiB,
          booted: true,
          lastHeartbeatSeq: g.heartbeatSeq,
          heartbeatAgeSec: 0,
        })),
      };
    },

    async prepareDisk(req: Routed<'prepareDisk'>) {
      (await fleet.host(req.hostId)).disks.add(req.vmId);
      return { diskPath: `sim://${req.vmId}` };
    },

    async startGuest(req: Routed<'startGuest'>) {
      const host = await fleet.host(req.hostId);
      const running = guestOn(host, req.vmId);
      if (running) return { pid: running.pid, hostId: host.hostId };
      const guest: SimGuest = {
        vmId: req.vmId,
        memoryMiB: req.memoryMiB,
        vcpus: req.vcpus,
        dirtyMiBps: 0,
        status: 'running',
        pid: fleet.pid(),
        heartbeatSeq: 0,
      };
      host.guests.set(req.vmId, guest);
      return { pid: guest.pid, hostId: host.hostId };
    },

    async waitForGuestBoot(req: Routed<'waitForGuestBoot'>) {
      await modelled(fleet, rounded(model, model.bootSec));
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest)
        throw ApplicationFailure.nonRetryable(`guest ${req.vmId} exited before it booted`, 'GuestBootError');
      return { heartbeatSeq: ++guest.heartbeatSeq, via: 'console' as const };
    },

    async resizeDisk(req: Routed<'resizeDisk'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      return { previousBytes: req.sizeBytes, sizeBytes: req.sizeBytes, online: guest !== undefined };
    },

    async guestInfo(req: Routed<'guestInfo'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest)
        throw ApplicationFailure.nonRetryable(
          `${req.vmId} does not run on ${req.hostId}`,
          'InvalidStateError',
        );
      return { hostname: req.vmId, os: 'simulated guest', agentVersion: 'sim', addresses: [] };
    },

    async screenshot(): Promise<never> {
      throw ApplicationFailure.nonRetryable('a simulated guest has no screen', 'InvalidStateError');
    },

    async consoleLog(): Promise<{ text: string }> {
      return { text: '' };
    },

    async hotplugNic(): Promise<never> {
      throw ApplicationFailure.nonRetryable('simulated hosts serve no networks', 'InvalidStateError');
    },

    async unplugNic(): Promise<never> {
      throw ApplicationFailure.nonRetryable('simulated hosts serve no networks', 'InvalidStateError');
    },

    async stopGuest(req: Routed<'stopGuest'>) {
      const host = await fleet.host(req.hostId);
      const existed = host.guests.delete(req.vmId);
      return { how: existed ? ('graceful' as const) : ('not-running' as const) };
    },

    async destroyGuest(req: Routed<'destroyGuest'>) {
      (await fleet.host(req.hostId)).guests.delete(req.vmId);
    },

    async deleteDisk(req: Routed<'deleteDisk'>) {
      const host = await fleet.host(req.hostId);
      if (host.guests.has(req.vmId)) invalidState(`disk of ${req.vmId} is in use by a running guest`);
      return { deleted: host.disks.delete(req.vmId) };
    },

    async guestStatus(req: Routed<'guestStatus'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest) return { running: false, status: 'absent', pid: null };
      return { running: guest.status === 'running', status: guest.status, pid: guest.pid };
    },

    async prepareIncoming(req: Routed<'prepareIncoming'>) {
      const host = await fleet.host(req.hostId);
      const existing = guestOn(host, req.vmId);
      if (existing?.status === 'running') invalidState(`vm ${req.vmId} already runs on ${host.hostId}`);
      const guest: SimGuest = {
        vmId: req.vmId,
        memoryMiB: req.memoryMiB,
        vcpus: req.vcpus,
        dirtyMiBps: 0,
        status: 'inmigrate',
        pid: fleet.pid(),
        heartbeatSeq: 0,
      };
      host.guests.set(req.vmId, guest);
      return { address: `sim:${host.hostId}`, port: 1, pid: guest.pid };
    },

    /**
     * Source: the transfer takes what the timing model says for this guest's memory, dirty
     * rate and bandwidth. One call may wait for all of it: a short slice would wake the
     * workflow (and hold the virtual clock) for nothing.
     */
    async driveMigration(req: Routed<'driveMigration'>) {
      const ctx = Context.current();
      const host = await fleet.host(req.hostId);
      const guest = guestOn(host, req.vmId);
      if (!guest) invalidState(`vm ${req.vmId} does not run on ${host.hostId}`);
      const targetHost = req.target.address.replace(/^sim:/, '');
      let m = fleet.migrations.get(req.vmId);
      if (!m || m.source !== host.hostId) {
        const bandwidth = req.policy.maxBandwidthMiBps ?? model.linkMiBps;
        const est = migrationEstimate(model, guest.memoryMiB, guest.dirtyMiBps, bandwidth);
        m = {
          vmId: req.vmId,
          source: host.hostId,
          target: targetHost,
          startedSec: clock.now(),
          endSec: clock.now() + est.seconds,
          converges: est.converges,
          transferredMiB: est.transferredMiB,
          bandwidthMiBps: bandwidth,
        };
        fleet.migrations.set(req.vmId, m);
      }
      const tracker = req.tracker ?? newTracker(Date.now());
      const beat = setInterval(() => ctx.heartbeat(statsOf(m, clock.now(), 'active')), 1000);
      let reached: boolean;
      try {
        reached = await clock.sleepUntil(m.endSec, 40_000, ctx.cancellationSignal);
      } finally {
        clearInterval(beat);
      }
      if (ctx.cancellationSignal.aborted) {
        fleet.migrations.delete(req.vmId);
        throw ctx.cancellationSignal.reason;
      }
      if (!reached)
        return {
          outcome: 'in-progress' as const,
          stats: statsOf(m, clock.now(), 'active'),
          tracker,
          sourceHeartbeatSeq: null,
        };
      fleet.migrations.delete(req.vmId);
      if (!m.converges) {
        return {
          outcome: 'gave-up' as const,
          reason: `the guest dirties ${guest.dirtyMiBps} MiB/s, too close to the ${m.bandwidthMiBps} MiB/s available: it would never converge`,
          stats: statsOf(m, clock.now(), 'active'),
          tracker,
          sourceHeartbeatSeq: guest.heartbeatSeq,
        };
      }
      const target = guestOn(await fleet.host(m.target), req.vmId);
      if (!target || target.status !== 'inmigrate')
        invalidState(`no incoming guest for ${req.vmId} on ${m.target}`);
      guest.status = 'postmigrate';
      target.status = 'running';
      fleet.completed.push(m);
      target.dirtyMiBps = guest.dirtyMiBps;
      target.heartbeatSeq = guest.heartbeatSeq;
      return {
        outcome: 'completed' as const,
        stats: statsOf(m, clock.now(), 'completed'),
        tracker,
        sourceHeartbeatSeq: guest.heartbeatSeq,
      };
    },

    async setMigrationBandwidth(req: Routed<'setMigrationBandwidth'>) {
      const m = fleet.migrations.get(req.vmId);
      if (!m) return;
      // The rest of the transfer runs at the new rate.
      const left = (m.endSec - clock.now()) * m.bandwidthMiBps;
      m.bandwidthMiBps = req.maxBandwidthMiBps;
      m.endSec = clock.now() + rounded(model, left / req.maxBandwidthMiBps);
    },

    async forceCompleteMigration(req: Routed<'forceCompleteMigration'>) {
      const m = fleet.migrations.get(req.vmId);
      if (m) {
        m.converges = true;
        m.endSec = Math.min(m.endSec, clock.now() + model.resolutionSec);
      }
    },

    async verifyGuestAlive(req: Routed<'verifyGuestAlive'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest || guest.status !== 'running') {
        throw ApplicationFailure.nonRetryable(
          `the destination of ${req.vmId} on ${req.hostId} is ${guest?.status ?? 'gone'}`,
          'VerificationError',
        );
      }
      return { seq: ++guest.heartbeatSeq, via: 'console' as const };
    },

    async adoptIncomingGuest(req: Routed<'adoptIncomingGuest'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest) invalidState(`no guest ${req.vmId} on ${req.hostId} to adopt`);
    },

    async killIncoming(req: Routed<'killIncoming'>) {
      const host = await fleet.host(req.hostId);
      const guest = guestOn(host, req.vmId);
      if (guest?.status === 'running' && req.keepIfCompleted) return { killed: false, completed: true };
      if (guest?.status === 'running')
        invalidState(`refusing to kill ${req.vmId} on ${host.hostId}: it runs there`);
      return { killed: host.guests.delete(req.vmId) };
    },

    async resumeSource(req: Routed<'resumeSource'>) {
      const guest = guestOn(await fleet.host(req.hostId), req.vmId);
      if (!guest) invalidState(`vm ${req.vmId} is not on ${req.hostId}`);
      fleet.migrations.delete(req.vmId);
      guest.status = 'running';
      return { status: guest.status };
    },

    async quitMigratedSource(req: Routed<'quitMigratedSource'>) {
      const host = await fleet.host(req.hostId);
      const guest = guestOn(host, req.vmId);
      if (!guest) return { quit: false };
      if (guest.status === 'running')
        invalidState(`refusing to quit the source of ${req.vmId} on ${host.hostId}: it is running`);
      host.guests.delete(req.vmId);
      return { quit: true };
    },

    async inspectLineage() {
      return unsupported('backup');
    },
    async runBackup() {
      return unsupported('backup');
    },
    async offlineBackup() {
      return unsupported('backup');
    },
    async verifyBackupFile() {
      return unsupported('backup verification');
    },
    async deleteBackupFile() {
      return unsupported('backup pruning');
    },
    async restoreDisk() {
      return unsupported('restore');
    },

    async listDatastore(req?: { hostId: string }) {
      return [...(await fleet.host(req!.hostId)).disks].map((vmId) => `sim://${vmId}`);
    },
    async inspectFiles(req: Routed<'inspectFiles'>) {
      // Simulated backups do not exist (backups are not modelled): nothing is there.
      return req.paths.map((p) => ({ path: p, exists: false, sizeBytes: 0 }));
    },

    async readPatch(req: Routed<'readPatch'>) {
      return { ...readPatchDefinition(req.name), currentLevel: (await fleet.host(req.hostId)).patchLevel };
    },

    /** Pre-flight, apply and post take their modelled time; injected failures come from host labels. */
    async runPatchStep(req: Routed<'runPatchStep'>) {
      const host = await fleet.host(req.hostId);
      const def = readPatchDefinition(req.name);
      if (req.step === 'preflight') {
        await modelled(fleet, rounded(model, model.preflightSec));
        if (host.preflightSkips)
          return { exitCode: PREFLIGHT_SKIP, timedOut: false, output: 'simulated: not needed here' };
        // Out of service from here until the post check: the span a forecast's unavailability counts.
        fleet.spans.set(host.hostId, { hostId: host.hostId, startSec: clock.now() });
        return { exitCode: 0, timedOut: false, output: '' };
      }
      if (req.step === 'post') {
        await modelled(fleet, rounded(model, model.postSec));
        const span = fleet.spans.get(host.hostId);
        if (span) await recordSpan({ ...span, endSec: clock.now() });
        return { exitCode: 0, timedOut: false, output: '' };
      }
      if (host.patchHangs) {
        await modelled(fleet, def.timeoutSec);
        return { exitCode: null, timedOut: true, output: 'simulated: the patch hung' };
      }
      await modelled(fleet, rounded(model, model.applySec));
      if (host.patchFailuresLeft > 0) {
        host.patchFailuresLeft--;
        return { exitCode: 1, timedOut: false, output: 'simulated: the patch failed' };
      }
      host.pendingLevel = def.version;
      return { exitCode: 0, timedOut: false, output: `simulated: ${def.version} applied` };
    },

    /** The host restarts for its modelled reboot time and comes back at the applied level. */
    async restartAgent(req?: { hostId: string }) {
      const host = await fleet.host(req!.hostId);
      const previous = host.agentPid;
      await modelled(fleet, rounded(model, model.rebootSec));
      host.agentPid = fleet.pid();
      host.patchLevel = host.pendingLevel ?? host.patchLevel;
      await recordRestart(host.hostId, { pid: host.agentPid, patchLevel: host.patchLevel });
      return { pid: previous };
    },

    async bootCanary(req: Routed<'bootCanary'>) {
      await fleet.host(req.hostId);
      const seconds = rounded(model, model.canarySec);
      await modelled(fleet, seconds);
      return { bootMs: seconds * 1000 };
    },
  };
}
