import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { repoRoot } from '../../domain/config';
import { ValidationError } from '../../domain/errors';
import { idSchema } from '../../domain/ids';
import { patchDefinitionSchema, type PatchDefinition } from '../../domain/patch';
import { createOverlay } from '../../hypervisor/qemu-img';
import type { QemuHost } from '../../hypervisor/qemu-host';
import { waitForGuestAlive } from '../../hypervisor/guest-liveness';
import { removeSeed, writeSeed } from '../../hypervisor/nocloud-seed';
import type { StepResult } from './contract';
import { runPatchStepLocked } from './patch-steps';

export interface PatchActivityDeps {
  hostId: string;
  qemu: QemuHost;
  patchLevel: () => string;
  setPatchLevel: (level: string) => void;
  /** Asks the agent to stop; its supervisor starts it again (a hypervisor-service restart). */
  requestRestart: () => void;
  guestDisk: string;
}

const PATCHES_DIR = path.join(repoRoot, 'patches');

/** A patch of the catalogue, as `patches/<name>/patch.json` defines it. */
export function readPatchDefinition(name: string): PatchDefinition {
  // A name is a DNS label, so it cannot leave the catalogue (`..`, `/`): any Temporal client
  // can schedule a patch step, and the step runs the named directory's executables.
  const id = idSchema.safeParse(name);
  if (!id.success) throw new ValidationError('name', `"${String(name)}" ${id.error.issues[0].message}`);
  const file = path.join(PATCHES_DIR, name, 'patch.json');
  if (!fs.existsSync(file))
    throw ApplicationFailure.nonRetryable(`no patch named "${name}" in the catalogue`, 'ValidationError');
  return patchDefinitionSchema.parse(JSON.parse(fs.readFileSync(file, 'utf8')));
}

/** A canary guest's id starts so: it is throw-away and never in the inventory. */
const CANARY_PREFIX = 'canary-';

/** Kills a canary guest and removes its overlay and files. */
function discardCanary(qemu: QemuHost, vmId: string): void {
  qemu.kill(vmId);
  fs.rmSync(path.join(qemu.runDir, `${vmId}.qcow2`), { force: true });
  removeSeed(path.join(qemu.runDir, `${vmId}.seed.iso`));
  fs.rmSync(qemu.files(vmId).serialLog, { force: true });
}

/**
 * Canaries left by an agent killed in the middle of a health check (found by the chaos run):
 * QEMU outlives its agent, as guests must, so the canary ran on unknown to the inventory. At an
 * agent's start none of its own checks runs yet, so every canary found is such a leftover.
 */
export function discardStrayCanaries(qemu: QemuHost): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(qemu.runDir);
  } catch {
    return [];
  }
  const stray = [
    ...new Set(names.filter((n) => n.startsWith(CANARY_PREFIX)).map((n) => n.slice(0, n.indexOf('.')))),
  ];
  for (const vmId of stray) discardCanary(qemu, vmId);
  return stray;
}

/** Patching on this host: the catalogue's executables, the restart, and a canary guest. */
export function createPatchActivities(deps: PatchActivityDeps) {
  return {
    async readPatch(req: { name: string }): Promise<PatchDefinition & { currentLevel: string }> {
      return { ...readPatchDefinition(req.name), currentLevel: deps.patchLevel() };
    },

    /** Runs a patch's pre-flight, apply or post executable; apply sets the new patch level. */
    async runPatchStep(req: { name: string; step: 'preflight' | 'apply' | 'post' }): Promise<StepResult> {
      const def = readPatchDefinition(req.name);
      const exe = req.step === 'apply' ? 'apply' : def[req.step];
      if (!exe) return { exitCode: 0, timedOut: false, output: `no ${req.step} step` };
      const ctx = Context.current();
      const { workflowExecution, activityId } = ctx.info;
      let lastBeat = 0;
      const result = await runPatchStepLocked(path.join(deps.qemu.runDir, 'patch-steps'), {
        // The same across this activity's retries: a retry adopts the run its first attempt began.
        owner: `${workflowExecution?.workflowId}/${workflowExecution?.runId}/${activityId}`,
        file: path.join(PATCHES_DIR, req.name, exe),
        env: { ...process.env, VIRTFLOW_HOST_ID: deps.hostId, VIRTFLOW_PATCH_LEVEL: deps.patchLevel() },
        timeoutMs: def.timeoutSec * 1000,
        signal: ctx.cancellationSignal,
        onWait: () => {
          if (Date.now() - lastBeat < 2000) return;
          lastBeat = Date.now();
          ctx.heartbeat(req.step);
        },
      });
      if (req.step === 'apply' && result.exitCode === 0 && !result.timedOut) deps.setPatchLevel(def.version);
      return result;
    },

    /** Restarts this host's hypervisor service (the agent); guests keep running and are re-adopted. */
    async restartAgent(): Promise<{ pid: number }> {
      setTimeout(deps.requestRestart, 200);
      return { pid: process.pid };
    },

    /** Boots a throw-away guest and waits for its agent to answer: QEMU on this host really works. */
    async bootCanary(req: { timeoutMs: number }): Promise<{ bootMs: number }> {
      const ctx = Context.current();
      const vmId = `${CANARY_PREFIX}${Date.now().toString(36)}`;
      const disk = path.join(deps.qemu.runDir, `${vmId}.qcow2`);
      const seedPath = path.join(deps.qemu.runDir, `${vmId}.seed.iso`);
      const started = Date.now();
      try {
        await createOverlay(deps.guestDisk, 'qcow2', disk);
        await writeSeed(seedPath, { instanceId: vmId, hostname: vmId, sshKeys: [] });
        await deps.qemu.start({ vmId, memoryMiB: 128, vcpus: 1, firmware: 'bios', disks: [disk], seedPath });
        await waitForGuestAlive(deps.qemu, vmId, {
          guestAgent: true,
          timeoutMs: req.timeoutMs,
          onWait: () => ctx.heartbeat(),
          signal: ctx.cancellationSignal,
        }).catch((err: Error) => {
          throw ApplicationFailure.nonRetryable(
            `canary guest did not boot on ${deps.hostId}: ${err.message}`,
            'HealthCheckError',
          );
        });
        return { bootMs: Date.now() - started };
      } finally {
        discardCanary(deps.qemu, vmId);
      }
    },
  };
}
