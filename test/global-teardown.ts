import fs from 'node:fs';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { QemuHost } from '../hypervisor/qemu-host';
import type { ManagedProcess } from '../scripts/services/processes';

/** Stops the shared services and any guest a failed test left running. */
export default async function globalTeardown(): Promise<void> {
  const services = (globalThis as Record<string, unknown>).__virtflowTestServices as
    { temporal: TestWorkflowEnvironment; ferret: { process: ManagedProcess }; runDir: string } | undefined;
  if (!services) return;
  for (const runDir of findHostRunDirs(services.runDir)) {
    const qemu = new QemuHost(runDir);
    for (const guest of qemu.list()) qemu.kill(guest.vmId);
  }
  await services.ferret.process.stop();
  await services.temporal.teardown();
  fs.rmSync(services.runDir, { recursive: true, force: true });
}

/** Every `hosts/<id>` directory below the run's per-file data directories. */
function findHostRunDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const full = path.join(dir, e.name);
      if (path.basename(dir) === 'hosts') found.push(full);
      else if (depth < 3) walk(full, depth + 1);
    }
  };
  walk(root, 0);
  return found;
}
