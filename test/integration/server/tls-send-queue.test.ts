// The send-queue cap over TLS (server/src/transport/turn-writes.ts): a TLSSocket keeps the
// bytes of a write in writableLength until the next check phase even when the kernel took
// them, so the cap leaves out the current turn's writes, and only those, only up to
// TURN_ALLOWANCE caps, and only while the kernel takes everything; a socket that is not
// encrypted is counted as it is.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import tls from 'node:tls';
import { TURN_ALLOWANCE, held, wrote } from '../../../server/src/transport/turn-writes.js';
import { makePki } from '../../support/security-kit.js';

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

test('a plain socket counts its whole writableLength, writes of this turn or not', async () => {
  const s = { writableLength: 5000 };
  wrote(s, 5000);
  assert.is(held(s, 1000), 5000);
});

test('an encrypted socket: this turn\'s writes are left out, up to TURN_ALLOWANCE caps; the next turn counts all', async () => {
  const s = { writableLength: 0, encrypted: true };
  assert.is(held(s, 1000), 0);
  wrote(s, 3000);
  s.writableLength = 3500;
  assert.is(held(s, 1000), 500, 'what was there before the turn still counts');
  wrote(s, 10_000);
  s.writableLength = 13_500;
  assert.is(held(s, 1000), 13_500 - TURN_ALLOWANCE * 1000, 'at most TURN_ALLOWANCE caps left out');
  await nextTurn();
  await nextTurn();
  assert.is(held(s, 1000), 13_500, 'still held after the turn: counted in full');
});

test('once the kernel holds encrypted bytes back (the TCP handle under the TLSSocket, or under a WebSocket over it), the whole writableLength counts', async () => {
  const tcp = { _handle: { writeQueueSize: 1 } };
  const s = { writableLength: 3000, encrypted: true, _parent: tcp };
  wrote(s, 3000);
  assert.is(held(s, 1000), 3000);
  tcp._handle.writeQueueSize = 0;
  assert.is(held(s, 1000), 0, 'the kernel takes all again: the turn is left out');
  const ws = { writableLength: 2000, encrypted: true, wire: { _parent: { _handle: { writeQueueSize: 5 } } } };
  wrote(ws, 2000);
  assert.is(held(ws, 1000), 2000);
  await nextTurn();
});

test('a real TLSSocket over loopback: writes the kernel took count in writableLength until the check phase, not in held()', async () => {
  const pki = makePki();
  const server = tls.createServer({ cert: pki.server.certPem, key: pki.server.keyPem });
  const accepted = new Promise<tls.TLSSocket>((r) => server.once('secureConnection', r));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = tls.connect({ port, host: '127.0.0.1', ca: pki.caPem, servername: 'localhost' });
  try {
    client.on('data', () => {});
    const s = await accepted;
    const chunk = Buffer.alloc(64 * 1024, 7);
    const cap = 128 * 1024;
    for (let i = 0; i < 4; i++) {
      s.write(chunk);
      wrote(s, chunk.length);
    }
    assert.ok(s.writableLength >= 4 * chunk.length, `writableLength ${s.writableLength} still counts the turn's writes`);
    assert.is(held(s, cap), s.writableLength - 4 * chunk.length);
    await nextTurn();
    await nextTurn();
    assert.is(s.writableLength, 0, 'the kernel took them all');
    assert.is(held(s, cap), 0);
  } finally {
    client.destroy();
    server.close();
    pki.cleanup();
  }
});

test.run();
