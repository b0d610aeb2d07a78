import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A unix socket server in a temporary directory, standing in for a QEMU monitor or guest agent channel. */
export async function fakeUnixServer(
  name: string,
  onConnection: (socket: net.Socket) => void,
): Promise<{ socketPath: string; close: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vf-${name}-`));
  const socketPath = path.join(dir, `${name}.sock`);
  const server = net.createServer(onConnection);
  await new Promise<void>((r) => server.listen(socketPath, r));
  return {
    socketPath,
    close: () => {
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
