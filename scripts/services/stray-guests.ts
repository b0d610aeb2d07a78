import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../domain/config';

/**
 * QEMU processes whose command line names a host directory under `dataDir`, read from /proc.
 * A guest whose agent died while starting it may have no pidfile yet, so pidfiles alone can
 * miss one; its command line (`-pidfile <host dir>/<vm>.pid`) still names the host's directory.
 */
export function qemuProcessesUnder(dataDir: string): number[] {
  const hostsDir = path.dirname(dataPaths(dataDir).hostDir('x')) + path.sep;
  return liveProcesses(
    ({ argv }) => path.basename(argv[0]).startsWith('qemu-system') && argv.some((a) => a.includes(hostsDir)),
  ).map((p) => p.pid);
}

/** Live (not zombie) processes of this machine that `match` accepts, read from /proc. */
export function liveProcesses(
  match: (p: { pid: number; argv: string[] }) => boolean,
): { pid: number; argv: string[] }[] {
  const found: { pid: number; argv: string[] }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || isZombie(entry)) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const p = { pid: Number(entry), argv: cmdline.split('\0') };
    if (match(p)) found.push(p);
  }
  return found;
}

/**
 * Kills every QEMU process under `dataDir` until two scans a moment apart find none (a QEMU that
 * was daemonizing during the first scan shows up in the second). Returns how many were killed.
 */
export async function killStrayGuests(dataDir: string, timeoutMs = 10_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let killed = 0;
  let quietScans = 0;
  while (quietScans < 2 && Date.now() < deadline) {
    const pids = qemuProcessesUnder(dataDir);
    quietScans = pids.length === 0 ? quietScans + 1 : 0;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return killed;
}

function isZombie(pid: string): boolean {
  try {
    // The state follows the command name in parentheses, which may itself hold spaces.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}
