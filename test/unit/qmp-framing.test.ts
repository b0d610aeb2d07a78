import type net from 'node:net';
import { fakeUnixServer } from '../helpers/fake-socket';
import { QmpClient, QmpError } from '../../hypervisor/qmp';

/**
 * A fake QEMU monitor on a unix socket: sends the greeting, answers qmp_capabilities, then hands
 * every later command to `answer`, which writes whatever bytes the test wants.
 */
async function fakeMonitor(answer: (cmd: { execute: string; id: string }, socket: net.Socket) => void) {
  return fakeUnixServer('qmp', (socket) => {
    socket.write('{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\r\n');
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const cmd = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities') socket.write(`{"return": {}, "id": "${cmd.id}"}\r\n`);
        else answer(cmd, socket);
      }
    });
  });
}

describe('QMP client framing', () => {
  test('matches replies to commands by id, whatever order they come in and however they are split', async () => {
    const held: { id: string; socket: net.Socket }[] = [];
    const monitor = await fakeMonitor((cmd, socket) => {
      held.push({ id: cmd.id, socket });
      if (held.length < 2) return;
      // Answer the second command first, its reply torn across writes, with an event in between.
      const [first, second] = held;
      const reply2 = `{"return": {"status": "running"}, "id": "${second.id}"}\r\n`;
      socket.write(reply2.slice(0, 10));
      setTimeout(() => {
        socket.write(
          reply2.slice(10) + '{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}\r\n',
        );
        socket.write(`{"return": {"status": "paused"}, "id": "${first.id}"}\r\n`);
      }, 20);
    });
    const qmp = await QmpClient.connect(monitor.socketPath);
    const events: string[] = [];
    qmp.on('event', (e: { event: string }) => events.push(e.event));
    const [a, b] = await Promise.all([qmp.execute('query-status'), qmp.execute('query-status')]);
    expect(a).toEqual({ status: 'paused' });
    expect(b).toEqual({ status: 'running' });
    expect(events).toEqual(['STOP']);
    qmp.close();
    monitor.close();
  });

  test('an error reply rejects with its QMP class; a silent monitor times out; a lost connection fails what is pending', async () => {
    const monitor = await fakeMonitor((cmd, socket) => {
      if (cmd.execute === 'bad')
        socket.write(`{"error": {"class": "CommandNotFound", "desc": "no such"}, "id": "${cmd.id}"}\n`);
      if (cmd.execute === 'hangup') socket.destroy();
    });
    const qmp = await QmpClient.connect(monitor.socketPath);
    await expect(qmp.execute('bad')).rejects.toMatchObject({ errorClass: 'CommandNotFound' });
    const silent = await qmp.execute('silent', undefined, 50).catch((e: unknown) => e);
    expect(silent).toBeInstanceOf(QmpError);
    expect((silent as QmpError).errorClass).toBe('Timeout');
    await expect(qmp.execute('hangup')).rejects.toMatchObject({ errorClass: 'Disconnected' });
    expect(qmp.isClosed).toBe(true);
    monitor.close();
  });
});
