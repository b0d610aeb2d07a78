import fs from 'node:fs';

/**
 * A guest's serial console goes to a socket (for `vm console`) and QEMU appends everything it
 * prints to a log file, connected or not. A guest may print without end, so the host agent
 * rotates each log once it passes `maxBytes`: the last quarter moves to `<log>.1`, replacing the
 * one before, and the log is truncated in place. QEMU opened it with O_APPEND (`logappend=on`),
 * so its next write lands at the new end: no hole, no restart. Disk use per guest stays below
 * twice `maxBytes` plus what the guest prints between two rotations; nothing is held in memory.
 */
export function rotateConsoleLog(logPath: string, maxBytes: number): boolean {
  let size: number;
  try {
    size = fs.statSync(logPath).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  const keep = Math.floor(maxBytes / 4);
  const tail = Buffer.alloc(Math.min(keep, size));
  const fd = fs.openSync(logPath, 'r+');
  try {
    fs.readSync(fd, tail, 0, tail.length, size - tail.length);
    fs.writeFileSync(`${logPath}.1`, tail);
    fs.ftruncateSync(fd, 0);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** The last `bytes` the guest printed, across the rotated log and the current one. */
export function consoleTail(logPath: string, bytes: number): string {
  const read = (file: string) => {
    try {
      return fs.readFileSync(file);
    } catch {
      return Buffer.alloc(0);
    }
  };
  const all = Buffer.concat([read(`${logPath}.1`), read(logPath)]);
  return all.subarray(Math.max(0, all.length - bytes)).toString('utf8');
}
