import fs from 'node:fs';
import net from 'node:net';
import { InvalidStateError } from '../domain/errors';

/** Ctrl-], as telnet and `virsh console` use it: the one byte that never reaches the guest. */
const DETACH = 0x1d;

/**
 * Attaches the terminal to a guest's serial console socket until Ctrl-] or the guest's QEMU
 * closes it. The socket lives in the host's run directory, so this works on the host itself
 * (and on the local stack, whose hosts share this machine).
 */
export async function attachConsole(socketPath: string, what: string): Promise<void> {
  if (!fs.existsSync(socketPath))
    throw new InvalidStateError(
      `${what} has no console here (${socketPath}): run this on its host, while it runs`,
    );
  const socket = net.createConnection(socketPath);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  process.stderr.write(`connected to the console of ${what}; Ctrl-] detaches\r\n`);
  const stdin = process.stdin;
  const raw = stdin.isTTY;
  if (raw) stdin.setRawMode(true);
  await new Promise<void>((resolve) => {
    const done = () => {
      stdin.off('data', onInput);
      if (raw) stdin.setRawMode(false);
      // Pausing is not enough: an open pipe on stdin would keep the CLI alive after detaching.
      stdin.destroy();
      socket.destroy();
      resolve();
    };
    const onInput = (chunk: Buffer) => {
      const at = chunk.indexOf(DETACH);
      if (at >= 0) {
        if (at > 0) socket.write(chunk.subarray(0, at));
        done();
      } else socket.write(chunk);
    };
    stdin.on('data', onInput);
    socket.on('data', (d) => process.stdout.write(d));
    socket.once('close', done);
  });
  process.stderr.write('\r\ndetached\r\n');
}
