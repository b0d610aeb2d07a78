/**
 * User-data scripts that give the local test guest something to do, as an operator's
 * user-data would: the guest's init runs a `#!` user-data once per boot, in the background,
 * with VM_ID set. Its boot partition ends at 33 MiB, so disk writes start above it.
 */

/** Writes a line into the disk every second (one 4 KiB block from 40 MiB on): a disk that keeps changing. */
export const diskWriter = `#!/bin/sh
s=0
while true; do
  s=$((s + 1))
  echo "virtflow-disk-write vm=$VM_ID seq=$s" | dd of=/dev/vda bs=4096 seek=$((10240 + s % 4096)) conv=notrunc,fsync 2>/dev/null
  sleep 1
done
`;

/** Keeps rewriting \`mib\` of memory: a guest that is hard to migrate. */
export const memoryDirtier = (mib: number) => `#!/bin/sh
mount -t tmpfs tmpfs /tmp
dd if=/dev/urandom of=/tmp/seed bs=1M count=${mib} 2>/dev/null
while true; do cp /tmp/seed /tmp/copy; done
`;

/**
 * After \`afterSec\`, writes \`mib\` of random data from 600 MiB on, once, then says so on the
 * console: a known amount of dirtied disk, for incremental backups.
 */
export const diskFill = (mib: number, afterSec: number) => `#!/bin/sh
sleep ${afterSec}
dd if=/dev/urandom of=/dev/vda bs=1M seek=600 count=${mib} conv=fsync 2>/dev/null
echo "virtflow-diskfill-done vm=$VM_ID mib=${mib}" > /dev/console
`;

/** Prints to the serial console as fast as the guest can: a console that never stops. */
export const floodConsole = `#!/bin/sh
yes "flood flood flood flood flood flood flood flood flood flood" > /dev/ttyS0
`;

/**
 * After `afterSec`, stops the guest's agent (SIGSTOP) and says so on the console: a guest whose
 * OS still runs and prints heartbeats, but whose agent never answers again.
 */
export const freezeGuestAgent = (afterSec: number) => `#!/bin/sh
sleep ${afterSec}
kill -STOP "$(cat /run/guest-agent.pid)" && echo "virtflow-agent-frozen vm=$VM_ID" > /dev/console
`;

/**
 * Each boot adds one 1 MiB chunk of random data to the first data disk (vdb), after the chunks
 * earlier boots wrote, and records the disk's SHA-256 as written in /run/vdb.written. Then,
 * every second, it reads the whole disk again past the page cache and records
 * `<seq> <sha256>` in /run/vdb.read: what the guest sees on its disk, wherever it runs.
 */
export const dataDiskWriter = `#!/bin/sh
n=0
while [ "$(dd if=/dev/vdb bs=1M skip=$n count=1 2>/dev/null | tr -d '\\000' | head -c 1 | wc -c)" -eq 1 ]; do
  n=$((n + 1))
done
dd if=/dev/urandom of=/dev/vdb bs=1M seek=$n count=1 conv=fsync 2>/dev/null
sha256sum /dev/vdb | cut -d' ' -f1 > /run/vdb.tmp && mv /run/vdb.tmp /run/vdb.written
s=0
while true; do
  s=$((s + 1))
  sync; echo 3 > /proc/sys/vm/drop_caches
  echo "$s $(sha256sum /dev/vdb | cut -d' ' -f1)" > /run/vdb.tmp && mv /run/vdb.tmp /run/vdb.read
  sleep 1
done
`;

/**
 * Probes each target forever: one ping (a second to answer), then `<round> ok` or
 * `<round> unreachable` in /run/reach.<target>. With `addresses`, first replaces eth0's
 * addresses with those: a guest claiming addresses of other networks' subnets, to see whether
 * their segments reach it.
 */
export const reachProbe = (targets: string[], addresses: string[] = []) => `#!/bin/sh
${addresses.length ? 'ip addr flush dev eth0\n' : ''}${addresses.map((a) => `ip addr add ${a} dev eth0`).join('\n')}
round=0
while true; do
  round=$((round + 1))
  for t in ${targets.join(' ')}; do
    if ping -c 1 -W 1 "$t" > /dev/null 2>&1; then s=ok; else s=unreachable; fi
    echo "$round $s" > "/run/reach.$t.tmp" && mv "/run/reach.$t.tmp" "/run/reach.$t"
  done
  sleep 0.5
done
`;

/**
 * Pings `target` every 10 ms, forever, in rounds of 200 pings (2 s): each round appends
 * `<round> <transmitted> <received>` to /run/ping.rounds (read with `parsePingRounds`). What a
 * peer of a migrating guest sees.
 */
export const steadyPinger = (target: string) => `#!/bin/sh
round=0
while true; do
  round=$((round + 1))
  # A count, not a deadline: a round waits for its last reply (a deadline would count it lost).
  out=$(ping -q -i 0.01 -c 200 "${target}" 2>&1)
  tx=$(echo "$out" | sed -n 's/^\\([0-9]*\\) packets transmitted.*/\\1/p')
  rx=$(echo "$out" | sed -n 's/.*transmitted, \\([0-9]*\\) packets received.*/\\1/p')
  echo "$round \${tx:-0} \${rx:-0}" >> /run/ping.rounds
done
`;

export interface PingRound {
  round: number;
  sent: number;
  received: number;
}

/** The rounds `steadyPinger` recorded, oldest first. */
export function parsePingRounds(text: string): PingRound[] {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ').map(Number))
    .map(([round, sent, received]) => ({ round, sent, received }));
}
