import { fakeUnixServer } from '../helpers/fake-socket';
import { GuestAgentError, withGuestAgent } from '../../hypervisor/guest-agent';

/**
 * A fake guest agent channel on a unix socket: every line the client writes goes to `answer`,
 * which writes whatever bytes the test wants, as a guest (or a stale earlier conversation) would.
 */
async function fakeChannel(answer: (line: string, send: (text: string) => void) => void) {
  return fakeUnixServer('qga', (socket) => {
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('latin1');
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl).replace(/^\xff/, '');
        buffer = buffer.slice(nl + 1);
        // The delimiter is the byte 0xFF, not a UTF-8 character: write text as latin1.
        answer(line, (text) => socket.write(Buffer.from(text, 'latin1')));
      }
    });
  });
}

const syncId = (line: string) => (JSON.parse(line) as { arguments: { id: number } }).arguments.id;

describe('guest agent framing', () => {
  test('skips stale replies left in the channel and answers after the sync with our fresh id', async () => {
    const channel = await fakeChannel((line, send) => {
      if (line.includes('guest-sync-delimited')) {
        // What an earlier client left unread: a reply, a sync answer with another id, torn bytes.
        send('{"return": {"host-name": "old"}}\n\xff{"return": 12345}\n{"ret');
        setTimeout(() => send(`urn": 1}\n\xff{"return": ${syncId(line)}}\n`), 10);
      } else if (line.includes('guest-get-host-name')) {
        send('{"return": {"host-name": "web-1"}}\n');
      }
    });
    try {
      await expect(
        withGuestAgent(channel.socketPath, 2000, (agent) => agent.execute('guest-get-host-name')),
      ).resolves.toEqual({ 'host-name': 'web-1' });
    } finally {
      channel.close();
    }
  });

  test('a lost sync is repeated until answered; late answers to the repeats never pass for a reply', async () => {
    let syncs = 0;
    const channel = await fakeChannel((line, send) => {
      if (line.includes('guest-sync-delimited')) {
        syncs += 1;
        // The first sync is lost (the guest was reopening its port); the second is answered
        // late, after the third was answered at once: that late answer comes during the ping.
        if (syncs === 2) setTimeout(() => send(`\xff{"return": ${syncId(line)}}\n`), 300);
        if (syncs === 3) send(`\xff{"return": ${syncId(line)}}\n`);
      } else if (line.includes('guest-ping')) {
        setTimeout(() => send('{"return": {}}\n'), 150);
      }
    });
    try {
      const reply = await withGuestAgent(channel.socketPath, 2000, (agent) => agent.execute('guest-ping'));
      expect(reply).toEqual({});
      expect(syncs).toBe(3);
    } finally {
      channel.close();
    }
  });

  test('an agent that never answers the sync fails within the timeout, not later', async () => {
    const channel = await fakeChannel(() => undefined);
    try {
      const started = Date.now();
      await expect(withGuestAgent(channel.socketPath, 300, async () => 'never')).rejects.toThrow(
        GuestAgentError,
      );
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      channel.close();
    }
  });

  test('an error reply becomes an error naming the command and the class', async () => {
    const channel = await fakeChannel((line, send) => {
      if (line.includes('guest-sync-delimited')) send(`\xff{"return": ${syncId(line)}}\n`);
      else send('{"error": {"class": "CommandNotFound", "desc": "no such command"}}\n');
    });
    try {
      await expect(
        withGuestAgent(channel.socketPath, 2000, (agent) => agent.execute('guest-fsfreeze-freeze')),
      ).rejects.toThrow('guest agent guest-fsfreeze-freeze: CommandNotFound: no such command');
    } finally {
      channel.close();
    }
  });
});
