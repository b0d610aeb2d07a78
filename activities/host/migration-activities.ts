import fs from 'node:fs';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { decideConvergence, newTracker } from '../../domain/convergence';
import type { MigrationPolicy } from '../../domain/migration';
import {
  migrationInFlight,
  readMigration,
  setMigrationCapabilities,
  setMigrationParameters,
} from '../../hypervisor/migration';
import { GuestNotAliveError, waitForGuestAlive } from '../../hypervisor/guest-liveness';
import type { QemuHost } from '../../hypervisor/qemu-host';
import { readGuestLog } from '../../hypervisor/serial-log';
import { attachNics, guestSpecOf, type GuestActivityDeps } from './guest-activities';
import type {
  DriveMigrationRequest,
  DriveResult,
  GuestAliveProof,
  GuestStartRequest,
  IncomingEndpoint,
  VerifyAliveRequest,
} from './contract';

export interface MigrationActivityDeps {
  hostId: string;
  qemu: QemuHost;
  datastoreDir: string;
  migrationAddress: string;
  migrationPorts: { first: number; last: number };
  network?: GuestActivityDeps['network'];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Gratuitous ARP/RARP rounds after switch-over (ms): the first at once, then backing off. */
const ANNOUNCE = { initial: 50, max: 550, rounds: 5, step: 100 };

/** Live migration, both ends: the target's incoming QEMU and the source's outgoing stream. */
export function createMigrationActivities(deps: MigrationActivityDeps) {
  const { hostId, qemu, datastoreDir, migrationAddress, migrationPorts } = deps;
  const monitor = (vmId: string) => qemu.monitor(vmId);
  const detachSourceTaps = async (vmId: string) => {
    const nics = qemu.find(vmId)?.spec.nics ?? [];
    if (nics.length) await deps.network?.detach(nics);
  };

  return {
    /**
     * Target: starts a fresh QEMU waiting for the stream (`-incoming defer`) on a free port of
     * this host's range. A leftover destination from an earlier try is killed first: after a
     * cancelled migration QEMU needs a new process. A guest already running here is never touched.
     */
    async prepareIncoming(req: GuestStartRequest & { policy: MigrationPolicy }): Promise<IncomingEndpoint> {
      // The destination attaches the same disk, seed and UEFI variables the source runs with.
      const { spec, guest } = guestSpecOf(datastoreDir, req);
      const existing = qemu.find(req.vmId);
      if (existing) {
        const status = await (await monitor(req.vmId)).command('query-status').catch(() => undefined);
        if (status?.running) {
          throw ApplicationFailure.nonRetryable(
            `vm ${req.vmId} already runs on ${hostId}`,
            'InvalidStateError',
          );
        }
        qemu.kill(req.vmId);
      }
      for (const file of [...spec.disks, spec.seedPath, ...(spec.varsPath ? [spec.varsPath] : [])]) {
        try {
          fs.accessSync(file, fs.constants.R_OK | fs.constants.W_OK);
        } catch {
          throw ApplicationFailure.nonRetryable(
            `${hostId} cannot see the shared datastore: ${file} is not accessible`,
            'DatastoreNotVisibleError',
          );
        }
      }
      // The same MACs on the same networks: the guest keeps its addresses on this host.
      const incoming = await qemu.start({ ...(await attachNics(deps, spec, guest)), incoming: true });
      const qmp = await monitor(req.vmId);
      await setMigrationCapabilities(qmp, req.policy, 'target');
      // The destination's first announce at once, not QEMU's default 50 ms after switch-over:
      // until switches hear it, the guest's traffic goes to the paused source's port.
      if (guest.nics?.length) await qmp.execute('migrate-set-parameters', { 'announce-initial': 0 });
      for (let port = migrationPorts.first; port <= migrationPorts.last; port++) {
        try {
          await qmp.execute('migrate-incoming', { uri: `tcp:${migrationAddress}:${port}` });
          return { address: migrationAddress, port, pid: incoming.pid };
        } catch (err) {
          if (!/in use|Failed to bind|Address already/i.test((err as Error).message)) throw err;
        }
      }
      qemu.kill(req.vmId);
      throw ApplicationFailure.retryable(
        `no free migration port on ${hostId} in ${migrationPorts.first}-${migrationPorts.last}`,
        'NoMigrationPortError',
      );
    },

    /**
     * Source: drives the migration for one slice of time and reports where it is. The first
     * slice starts the stream; later slices (and retries after an agent restart) re-attach to
     * the one QEMU is already running. Heartbeats carry bytes, rate, iteration and downtime.
     */
    async driveMigration(req: DriveMigrationRequest): Promise<DriveResult> {
      const ctx = Context.current();
      const qmp = await monitor(req.vmId);
      let tracker = req.tracker;
      let stats = await readMigration(qmp);
      if (!tracker || stats.status === 'none') {
        await setMigrationCapabilities(qmp, req.policy, 'source');
        await setMigrationParameters(qmp, {
          maxBandwidthMiBps: req.policy.maxBandwidthMiBps,
          downtimeLimitMs: req.policy.maxDowntimeMs,
        });
        await qmp.execute('migrate', { uri: `tcp:${req.target.address}:${req.target.port}` });
        tracker = newTracker(Date.now());
      }
      const sourceSeq = () =>
        readGuestLog(qemu.files(req.vmId).serialLog, req.vmId).lastHeartbeat?.seq ?? null;
      // Bounded here too: a slice must end well within the call's one-minute limit.
      const sliceEnd = Date.now() + Math.min(Math.max(req.sliceMs, 100), 45_000);
      for (;;) {
        stats = await readMigration(qmp);
        ctx.heartbeat(stats);
        if (stats.status === 'completed') {
          // The paused source's taps leave their bridges: the bridges forget the guest's MACs at
          // once and flood its traffic, which reaches the destination before its announce does.
          await detachSourceTaps(req.vmId);
          return { outcome: 'completed', stats, tracker, sourceHeartbeatSeq: sourceSeq() };
        }
        if (!migrationInFlight.has(stats.status)) {
          const info = await qmp.command('query-migrate');
          return {
            outcome: 'failed',
            reason: `QEMU reports the migration ${stats.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`,
            stats,
            tracker,
            sourceHeartbeatSeq: sourceSeq(),
          };
        }
        const decision = decideConvergence(tracker, stats, req.policy, req.memoryMiB, Date.now());
        tracker = decision.tracker;
        const action = decision.action;
        if (action.kind === 'set-downtime')
          await setMigrationParameters(qmp, { downtimeLimitMs: action.downtimeMs });
        if (action.kind === 'force')
          await qmp.execute(action.mode === 'post-copy' ? 'migrate-start-postcopy' : 'stop');
        if (action.kind === 'give-up') {
          return {
            outcome: 'gave-up',
            reason: action.reason,
            stats,
            tracker,
            sourceHeartbeatSeq: sourceSeq(),
          };
        }
        if (Date.now() >= sliceEnd)
          return { outcome: 'in-progress', stats, tracker, sourceHeartbeatSeq: null };
        // An abort cancels this activity: stop watching at once, the workflow rolls back.
        await Promise.race([sleep(50), ctx.cancelled]);
      }
    },

    async setMigrationBandwidth(req: { vmId: string; maxBandwidthMiBps: number }): Promise<void> {
      await setMigrationParameters(await monitor(req.vmId), { maxBandwidthMiBps: req.maxBandwidthMiBps });
    },

    /** Source: finish now, by switching to post-copy or by pausing the guest until the copy ends. */
    async forceCompleteMigration(req: { vmId: string; mode: 'post-copy' | 'pause' }): Promise<void> {
      const qmp = await monitor(req.vmId);
      await qmp.execute(req.mode === 'post-copy' ? 'migrate-start-postcopy' : 'stop');
    },

    /**
     * Target: the guest must run here and prove it now: its agent answers a ping in a
     * conversation opened after switch-over, or (images without an agent) it writes a heartbeat
     * newer than any it wrote on the source. QEMU's `completed` alone is never trusted.
     */
    async verifyGuestAlive(req: VerifyAliveRequest): Promise<GuestAliveProof & { seq: number | null }> {
      const ctx = Context.current();
      // First, before any proof: tell the network the guest's MACs are behind this host's ports
      // now, so its peers' traffic stops going to the source.
      if (qemu.find(req.vmId)?.spec.nics?.length)
        await (await monitor(req.vmId)).execute('announce-self', ANNOUNCE);
      try {
        const deadline = Date.now() + req.timeoutMs;
        // When one proof fails, the other stops waiting too.
        const failed = new AbortController();
        const signal = AbortSignal.any([ctx.cancellationSignal, failed.signal]);
        const wait = (guestAgent: boolean) =>
          waitForGuestAlive(qemu, req.vmId, {
            guestAgent,
            timeoutMs: Math.max(0, deadline - Date.now()),
            afterSeq: req.afterSeq,
            // The migration is not done until the guest proves it runs: each poll interval adds to it.
            pollMs: 20,
            onWait: (missing) => ctx.heartbeat({ missing }),
            signal,
          }).catch((err: unknown) => {
            failed.abort(err);
            throw err;
          });
        // Every liveness signal the guest gave on the source must be fresh here: a guest that
        // also beat on its console must go on beating. One process answering proves less than
        // the whole guest running (TCG precopy can corrupt guest RAM, DESIGN's known QEMU 7.2 bug).
        // Both are awaited side by side: neither waits for the other.
        const [proof] = await Promise.all([
          wait(req.guestAgent ?? false),
          req.guestAgent && req.afterSeq !== null ? wait(false) : undefined,
        ]);
        const after = await (await monitor(req.vmId)).command('query-status', 2000).catch(() => undefined);
        if (!after?.running)
          throw new GuestNotAliveError(
            `QEMU reports the destination ${after?.status ?? 'unknown'}, not running`,
            false,
          );
        return { seq: proof.via === 'console' ? proof.heartbeatSeq : null, via: proof.via };
      } catch (err) {
        if (!(err instanceof GuestNotAliveError)) throw err;
        // What QEMU says of the destination tells a paused guest from a guest that hangs.
        const qemuStatus = err.exited
          ? 'gone'
          : ((await (await monitor(req.vmId)).command('query-status', 2000).catch(() => undefined))?.status ??
            'unknown');
        throw ApplicationFailure.nonRetryable(
          err.exited
            ? `the destination QEMU of ${req.vmId} on ${hostId} is gone`
            : `the guest of ${req.vmId} did not prove it runs on ${hostId}: ${err.message} (QEMU status ${qemuStatus}, source seq ${req.afterSeq ?? 'none'})`,
          'VerificationError',
        );
      }
    },

    /** Target, on commit: the verified guest is now an ordinary guest of this host. */
    async adoptIncomingGuest(req: { vmId: string }): Promise<void> {
      qemu.updateSpec(req.vmId, { incoming: false });
    },

    /**
     * Target, on rollback: the destination process is killed and confirmed gone. With
     * `keepIfCompleted`, a destination that has loaded the whole stream (it left `inmigrate`:
     * the guest runs here now) is kept instead, and the workflow goes forward.
     */
    async killIncoming(req: {
      vmId: string;
      keepIfCompleted?: boolean;
    }): Promise<{ killed: boolean; completed?: boolean }> {
      if (req.keepIfCompleted && qemu.find(req.vmId)) {
        const { status } = await (await monitor(req.vmId)).command('query-status');
        if (status === 'running' || status === 'paused') return { killed: false, completed: true };
      }
      // Confirmed by the process itself being gone: only then may the source resume.
      return qemu.killConfirmed(req.vmId).catch((err: Error) => {
        throw new Error(`destination QEMU on ${hostId} did not die: ${err.message}`);
      });
    },

    /**
     * Source, on rollback, once the destination is confirmed dead: cancel a stream still in
     * flight and resume the guest if it was paused (forced completion, or completed but not verified).
     */
    async resumeSource(req: { vmId: string }): Promise<{ status: string }> {
      const qmp = await monitor(req.vmId);
      let stats = await readMigration(qmp);
      if (stats.status.startsWith('postcopy')) {
        throw ApplicationFailure.nonRetryable(
          `cannot resume ${req.vmId} on ${hostId}: post-copy had started, the guest's memory is split between hosts`,
          'InvalidStateError',
        );
      }
      if (migrationInFlight.has(stats.status)) await qmp.execute('migrate_cancel');
      for (let i = 0; i < 100 && migrationInFlight.has(stats.status); i++) {
        await sleep(100);
        stats = await readMigration(qmp);
      }
      const status = await qmp.command('query-status');
      // Back on their bridges before the guest runs again here.
      const nics = qemu.find(req.vmId)?.spec.nics ?? [];
      if (nics.length) await deps.network?.reattach(nics);
      if (!status.running) await qmp.command('cont');
      return { status: (await qmp.command('query-status')).status };
    },

    /** Source, on commit: quit the paused source QEMU. Refuses a source that is running. */
    async quitMigratedSource(req: { vmId: string }): Promise<{ quit: boolean }> {
      if (!qemu.find(req.vmId)) return { quit: false };
      const status = await (await monitor(req.vmId)).command('query-status');
      if (status.running) {
        throw ApplicationFailure.nonRetryable(
          `refusing to quit the source of ${req.vmId} on ${hostId}: it is running (${status.status})`,
          'InvalidStateError',
        );
      }
      await qemu.stop(req.vmId, 0);
      return { quit: true };
    },
  };
}
