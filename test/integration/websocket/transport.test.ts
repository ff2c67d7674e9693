// The stream over WebSocket, end to end on loopback: SDK clients over ws:// and wss://
// (webSocketConnect with the `ws` package's WebSocket) get addresses and exchange packets
// with a TCP client through the server; the bytes of the stream may be cut into messages
// and frames anyhow; /clients and the log say ws or wss; a 2013 client on the same port
// is unaffected; --ws-path moves the endpoint; the send queue holds for a slow WebSocket.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WebSocket } from 'ws';
import { webSocketConnect } from '../../../client-sdk/src/websocket.js';
import { KEEPALIVE, formatIPv4, readU32 } from '../../../protocol/index.js';
import { type Harness, SEED_DYNAMIC, SEED_KEEPALIVE, equalBytes, extRequest, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { type Pki, makePki, memoryLogger } from '../../support/security-kit.js';
import { OP, RawWs, frame, httpExchange, upgradeRequest, wsClass, wsTo } from '../../support/websocket-kit.js';

let pki: Pki;
test.before(() => {
  pki = makePki(['127.0.0.1']);
});
test.after(() => pki?.cleanup());

/** Sends a packet each way between `a` and `b` (SDK peers, ready) and waits for both. */
async function exchange(h: Harness, a: ReturnType<Harness['sdk']>, b: ReturnType<Harness['sdk']>, size: number, seed: number): Promise<void> {
  const ab = ipPacket(a.address, b.address, size, rng(seed));
  const ba = ipPacket(b.address, a.address, size, rng(seed + 1));
  assert.ok(a.client.send(ab), 'a sent');
  assert.ok(b.client.send(ba), 'b sent');
  await waitFor(() => b.packets.some((p) => equalBytes(p, ab)) && a.packets.some((p) => equalBytes(p, ba)), 3000, `the ${size}-byte packets both ways`, () => h.server.clients());
}

test('an SDK client over ws:// and one over TCP get addresses and exchange packets of every size through the server', async () => {
  const log = memoryLogger();
  await withServer({ subnet: '10.60.0.0/24', logger: log }, async (h) => {
    const w = h.sdk({ connect: wsTo(h.port) });
    const t = h.sdk();
    const [rw, rt] = await Promise.all([w.ready(), t.ready()]);
    assert.match(rw.address, /^10\.60\.0\./);
    assert.ok(rw.address !== rt.address);
    for (const [i, size] of [20, 64, 1400, 1500].entries()) await exchange(h, w, t, size, i);
    const info = h.server.clients().find((c) => c.address === rw.address)!;
    assert.is(info.transport, 'ws');
    assert.is(info.protocol, 'simplevpn');
    assert.match(info.remote, /^127\.0\.0\.1:\d+$/);
    assert.is(h.server.clients().find((c) => c.address === rt.address)!.transport, 'tcp');
    const up = log.find('upgrade');
    assert.is(up.length, 1);
    assert.is(up[0].fields.transport, 'ws');
    assert.is(log.find('connect').length, 2, 'one connect line per connection');
    w.close();
    await waitFor(() => h.sessions === 1, 3000, 'the WebSocket session to end');
  });
});

test('an SDK client over wss:// (the TLS port) exchanges packets with a TCP client', async () => {
  await withServer({ subnet: '10.61.0.0/24', tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 }, async (h) => {
    const w = h.sdk({ connect: wsTo(h.server.tlsPort, { secure: true, options: { ca: pki.caPem } }) });
    const t = h.sdk();
    const [rw] = await Promise.all([w.ready(5000), t.ready()]);
    await exchange(h, w, t, 1400, 9);
    assert.is(h.server.clients().find((c) => c.address === rw.address)!.transport, 'wss');
  });
});

test('message boundaries mean nothing: a request cut across messages, several frames in one message, a message in fragments', async () => {
  await withServer({ subnet: '10.62.0.0/24' }, async (h) => {
    const peer = h.sdk();
    await peer.ready();
    const c = h.track(await RawWs.open(h.port));
    assert.is(c.status, 101);
    // The request in three messages, cut inside the header.
    c.sendStream(extRequest(), [3, 11]);
    await waitFor(() => c.frames.length >= 1, 3000, 'the reply');
    const me = readU32(c.frames[0], 16);
    assert.match(formatIPv4(me), /^10\.62\.0\./);
    // Three packets and a keepalive in one message; then a packet cut in two messages.
    const p = [0, 1, 2].map((i) => ipPacket(me, peer.address, 100 + i, rng(i)));
    c.sendStream(Buffer.concat([p[0], SEED_KEEPALIVE, p[1], p[2].subarray(0, 30)]));
    c.sendStream(p[2].subarray(30));
    // One packet as a message in three fragments, a ping between them (control frames may interleave).
    const q = ipPacket(me, peer.address, 300, rng(7));
    c.write(frame(OP.binary, q.subarray(0, 10), { fin: false }));
    c.write(frame(OP.ping, 'between'));
    c.write(frame(OP.cont, q.subarray(10, 200), { fin: false }));
    c.write(frame(OP.cont, q.subarray(200), { fin: true }));
    await waitFor(() => peer.packets.length === 4, 3000, 'four packets at the peer', () => peer.packets.length);
    assert.ok([...p, q].every((x, i) => equalBytes(peer.packets[i], x)), 'in order, intact');
    await waitFor(() => c.received.some((f) => f.opcode === OP.pong && f.payload.toString() === 'between'), 3000, 'the pong');
    await waitFor(() => c.frames.some((f) => equalBytes(f, KEEPALIVE)), 3000, 'the keepalive echoed');
    // Back: a packet from the peer arrives in the WebSocket.
    const back = ipPacket(peer.address, me, 1000, rng(8));
    peer.client.send(back);
    await waitFor(() => c.frames.some((f) => equalBytes(f, back)), 3000, 'the packet back');
  });
});

test('a 2013 client on the same port is unaffected: its request and keepalives, beside WebSocket clients', async () => {
  await withServer({ subnet: '10.63.0.0/24' }, async (h) => {
    const w = h.sdk({ connect: wsTo(h.port) });
    await w.ready();
    const seed = await h.raw();
    const addr = await seed.requestSeed();
    seed.write(SEED_KEEPALIVE);
    assert.ok(equalBytes(await seed.read(20), SEED_KEEPALIVE), 'keepalive echoed');
    const p = ipPacket(w.address, addr, 200, rng(1));
    w.client.send(p);
    await waitFor(() => seed.frames.some((f) => equalBytes(f, p)), 3000, 'the packet at the seed client');
    const info = h.server.clients().find((c) => c.address === formatIPv4(addr))!;
    assert.equal([info.transport, info.protocol], ['tcp', 'seed']);
    // The seed request one byte per write: the first byte is an upper-case letter ('E').
    const slow = await h.raw();
    for (const byte of SEED_DYNAMIC) {
      slow.write(Uint8Array.of(byte));
      await sleep(1);
    }
    assert.ok(readU32(await slow.read(20), 16) !== 0, 'an address');
  });
});

test('--ws-path: the WebSocket is at that path only; the TCP stream is untouched', async () => {
  await withServer({ subnet: '10.64.0.0/24', wsPath: '/vpn/tunnel' }, async (h) => {
    const wrong = await httpExchange(h.port, upgradeRequest('/'));
    assert.is(wrong.status, 404);
    const w = h.sdk({ connect: wsTo(h.port, { path: '/vpn/tunnel?client=7' }) });
    await w.ready();
    const t = h.sdk();
    await t.ready();
    await exchange(h, w, t, 500, 3);
  });
});

test('writableLength counts what the WebSocket holds: a client that does not read loses packets (queue_full), is not disconnected, and the queue stays within --send-queue', async () => {
  const sendQueue = 128 * 1024;
  await withServer({ subnet: '10.65.0.0/24', sendQueue }, async (h) => {
    const slow = h.track(await RawWs.open(h.port));
    slow.sendStream(extRequest());
    await waitFor(() => slow.frames.length === 1, 3000, 'the reply');
    const addr = readU32(slow.frames[0], 16);
    slow.sock.pause();
    const session = h.sessionAt(addr)!;
    const flooder = h.sdk({ connect: wsTo(h.port) });
    await flooder.ready();
    const p = ipPacket(flooder.address, addr, 1400, rng(1));
    let max = 0;
    const end = Date.now() + 20_000;
    while (h.metrics.drops.queue_full < 500) {
      if (Date.now() > end) throw new Error(`the queue did not fill: ${JSON.stringify(h.metrics.drops)}, max ${max}`);
      for (let i = 0; i < 50; i++) flooder.client.send(p);
      max = Math.max(max, session.socket.writableLength);
      await new Promise((r) => setImmediate(r));
      max = Math.max(max, session.socket.writableLength);
    }
    assert.ok(max <= sendQueue, `writableLength ${max} past the cap ${sendQueue}`);
    assert.ok(max >= sendQueue / 2, `the queue filled (${max})`);
    assert.not.ok(session.closed, 'not disconnected for reading slowly');
    slow.sock.resume();
    await waitFor(() => slow.frames.length > 10, 5000, 'the slow client to read again');
  });
});

test('webSocketConnect: a server that refuses the upgrade (wrong path) is a connect failure, and the SDK retries', async () => {
  await withServer({ subnet: '10.66.0.0/24', wsPath: '/vpn' }, async (h) => {
    const c = h.sdk({ connect: webSocketConnect(`ws://127.0.0.1:${h.port}/nope`, { WebSocket: wsClass() }) });
    c.start();
    const down = await c.waitState('down', 3000);
    assert.match(JSON.stringify(down), /connect|404/);
    assert.is(h.sessions, 0);
  });
});

test('WebSocket options come from WebSocket itself when not passed: a clear failure where there is none', async () => {
  assert.is((globalThis as { WebSocket?: unknown }).WebSocket, undefined, 'Node 20 has no global WebSocket');
  await withServer({ subnet: '10.67.0.0/24' }, async (h) => {
    const c = h.sdk({ connect: webSocketConnect(`ws://127.0.0.1:${h.port}/`) });
    c.start();
    const down = await c.waitState('down', 3000);
    assert.match(JSON.stringify(down), /no WebSocket/);
  });
  // And with one on globalThis, it is used.
  (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
  try {
    await withServer({ subnet: '10.68.0.0/24' }, async (h) => {
      const c = h.sdk({ connect: webSocketConnect(`ws://127.0.0.1:${h.port}/`) });
      await c.ready();
      assert.is(h.server.clients()[0].transport, 'ws');
    });
  } finally {
    delete (globalThis as { WebSocket?: unknown }).WebSocket;
  }
});

test.run();
