// Hostile input to the WebSocket transport, handled as hostile TCP input is: answered
// promptly where HTTP allows (404 for another path, 400 for anything but a clean upgrade,
// 403 for a refused Origin, 431 for a huge head), closed at the handshake timeout where it
// never completes, and closed with the WebSocket status that fits for bad frames, oversized
// messages, text and floods, without the server buffering what the peer piles up. Each case
// leaves nothing behind: no session, no socket, no timer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readU32 } from '../../../protocol/index.js';
import { MAX_MESSAGE } from '../../../server/src/transport/websocket.js';
import { type Harness, extRequest, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { OP, RawWs, frame, httpExchange, upgradeRequest, wsTo } from '../../support/websocket-kit.js';

/** Sockets and timers of this process, by kind (Node's names: TCPSocketWrap, TLSWrap, Timeout...). */
function handles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) if (/Socket|TLS|TCPWrap|Timeout|Immediate/.test(r)) out[r] = (out[r] ?? 0) + 1;
  return out;
}

/**
 * The handles of a quiet server (its timers; no socket), once what earlier tests opened
 * has gone: what every test must come back to.
 */
async function baseline(): Promise<Record<string, number>> {
  await waitFor(() => Object.keys(handles()).every((k) => k === 'Timeout'), 4000, 'no socket left from before', handles);
  return handles();
}

/** Waits until no connection is left on the server and the handles are as before. */
async function nothingLeft(h: Harness, before: Record<string, number>, what: string): Promise<void> {
  await waitFor(() => h.sessions === 0, 4000, `${what}: no session left`, () => h.server.clients());
  let now: Record<string, number> = {};
  await waitFor(() => JSON.stringify((now = handles())) === JSON.stringify(before), 4000, `${what}: handles back to ${JSON.stringify(before)}`, () => now);
}

const CRLF = '\r\n';
const req = (lines: string[]) => lines.join(CRLF) + CRLF + CRLF;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const UPGRADE = ['Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13'];

test('HTTP that is not the upgrade at the path: 404 elsewhere, 400 for the rest, answered at once and closed', async () => {
  await withServer({ wsPath: '/vpn', handshakeTimeout: 5 }, async (h) => {
    const before = await baseline();
    const cases: Array<[string, string, number]> = [
      ['another path', upgradeRequest('/other'), 404],
      ['the root', upgradeRequest('/'), 404],
      ['a plain GET at the path', req(['GET /vpn HTTP/1.1', 'Host: x']), 400],
      ['POST at the path', req(['POST /vpn HTTP/1.1', 'Host: x', 'Content-Length: 0', ...UPGRADE]), 400],
      ['HEAD at the path', req(['HEAD /vpn HTTP/1.1', 'Host: x', ...UPGRADE]), 400],
      ['HTTP/1.0', req(['GET /vpn HTTP/1.0', 'Host: x', ...UPGRADE]), 400],
      ['no Connection: Upgrade', req(['GET /vpn HTTP/1.1', 'Host: x', 'Upgrade: websocket', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13']), 400],
      ['version 8', req(['GET /vpn HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 8']), 400],
      ['a short key', req(['GET /vpn HTTP/1.1', 'Host: x', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: abc', 'Sec-WebSocket-Version: 13']), 400],
      ['no Host', req(['GET /vpn HTTP/1.1', ...UPGRADE]), 400],
      ['an absolute target', req(['GET http://x/vpn HTTP/1.1', 'Host: x', ...UPGRADE]), 400],
      ['OPTIONS *', req(['OPTIONS * HTTP/1.1', 'Host: x']), 400],
    ];
    for (const [what, text, status] of cases) {
      const a = await httpExchange(h.port, text, 2000);
      assert.is(a.status, status, `${what}: ${a.text.split(CRLF)[0]}`);
      assert.ok(a.closed && a.elapsed < 1000, `${what}: closed at once (${a.elapsed} ms)`);
      assert.match(a.text, /\r\nConnection: close\r\n/);
      if (status === 404) assert.not.match(a.text, /vpn/, 'a 404 does not give the path away');
    }
    const r = h.metrics.refusals;
    assert.is(r.http_not_found, 2);
    assert.is(r.http_bad_request, cases.length - 2);
    assert.is(h.metrics.disconnects.refused, cases.length);
    await nothingLeft(h, before, 'after the refusals');
  });
});

test('request smuggling and malformed heads: conflicting Content-Length and Transfer-Encoding, obs-fold, bare LF, NUL, a second request: 400 and closed, nothing read past the first head', async () => {
  await withServer({ handshakeTimeout: 5 }, async (h) => {
    const before = await baseline();
    const base = ['GET / HTTP/1.1', 'Host: x', ...UPGRADE];
    const cases: Array<[string, string]> = [
      ['Content-Length and Transfer-Encoding', req([...base, 'Content-Length: 4', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      ['Transfer-Encoding: chunked', req([...base, 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
      ['a body', req([...base, 'Content-Length: 5']) + 'hello'],
      ['two Content-Length', req([...base, 'Content-Length: 0', 'Content-Length: 0'])],
      ['Transfer-Encoding with whitespace', req([...base, 'Transfer-Encoding : chunked'])],
      ['obs-fold', req([...base, 'X-Long: a', ' folded'])],
      ['whitespace before a colon', req(['GET / HTTP/1.1', 'Host : x', ...UPGRADE])],
      ['two Host headers', req([...base, 'Host: y'])],
      ['two keys', req([...base, `Sec-WebSocket-Key: ${KEY}`])],
      ['two Origins', req([...base, 'Origin: https://a.example', 'Origin: https://b.example'])],
      ['a NUL in a value', req([...base, 'X-Evil: a\x00b'])],
      ['a bare CR', req([...base, 'X-Evil: a\rb'])],
      ['bare LF line ends', base.join('\n') + '\n\n'],
      ['a name that is not a token', req([...base, 'X(Evil): 1'])],
      ['a request line of four parts', req(['GET / HTTP/1.1 extra', 'Host: x', ...UPGRADE])],
      ['a smuggled second request after a bad first', req(['GET /nope HTTP/1.1', 'Host: x']) + upgradeRequest('/')],
    ];
    for (const [what, text] of cases) {
      const a = await httpExchange(h.port, text, 2000);
      assert.ok(a.status === 400 || (what.startsWith('a smuggled') && a.status === 404), `${what}: ${a.text.split(CRLF)[0]}`);
      assert.is(a.text.match(/HTTP\/1\.1 /g)?.length, 1, `${what}: one answer only`);
      assert.ok(a.closed && a.elapsed < 1000, `${what}: closed at once`);
    }
    assert.is(h.metrics.connections, cases.length);
    assert.is(h.server.clients().length, 0);
    await nothingLeft(h, before, 'after the smuggling attempts');
  });
});

test('an upgrade that never completes is closed at the handshake timeout; a head past 8 KiB gets 431 at once', async () => {
  await withServer({ handshakeTimeout: 1 }, async (h) => {
    const before = await baseline();
    const t0 = Date.now();
    const [partial, dribble, silentWs] = await Promise.all([
      httpExchange(h.port, 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n', 4000),
      // A header line a byte at a time, every 100 ms: still the same deadline.
      httpExchange(h.port, Array.from('GET / HTTP/1.1\r\nHost: x\r\n'), 4000, { pauseMs: 100 }),
      // Upgraded, then no address request: the handshake timeout of the protocol, counted from the TCP connection.
      RawWs.open(h.port).then(async (c) => {
        await c.waitClosed(4000);
        return c;
      }),
    ]);
    for (const a of [partial, dribble]) {
      assert.ok(a.closed, 'closed');
      assert.is(a.status, 0, 'no answer, as for a TCP client that never asks');
    }
    assert.is(silentWs.status, 101);
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 3500, `at the timeout (${took} ms)`);
    assert.is(h.metrics.disconnects.handshake_timeout, 3);
    const big = await httpExchange(h.port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ' + 'a'.repeat(9000) + '\r\n\r\n', 2000);
    assert.is(big.status, 431);
    assert.is(h.metrics.refusals.http_head_too_large, 1);
    await nothingLeft(h, before, 'after the timeouts');
  });
});

test('--ws-origin: a listed browser origin is let in, any other refused with 403; a client without Origin is let in', async () => {
  await withServer({ wsOrigin: ['https://app.example.net', 'http://localhost:8080'] }, async (h) => {
    const before = await baseline();
    const evil = await httpExchange(h.port, upgradeRequest('/', ['Origin: https://evil.example']), 2000);
    assert.is(evil.status, 403);
    assert.is(h.metrics.refusals.http_forbidden_origin, 1);
    const sub = await httpExchange(h.port, upgradeRequest('/', ['Origin: https://app.example.net.evil.example']), 2000);
    assert.is(sub.status, 403);
    for (const origin of ['https://app.example.net', 'HTTP://LOCALHOST:8080', null]) {
      const c = await RawWs.open(h.port, { headers: origin ? [`Origin: ${origin}`] : [] });
      assert.is(c.status, 101, String(origin));
      c.destroy();
    }
    const sdk = h.sdk({ connect: wsTo(h.port, { options: { origin: 'https://app.example.net' } }) });
    await sdk.ready();
    const refused = h.sdk({ connect: wsTo(h.port, { options: { origin: 'https://evil.example' } }) });
    refused.start();
    await refused.waitState('down');
    sdk.close();
    refused.close();
    await nothingLeft(h, before, 'after the origins');
  });
});

/** A WebSocket client with an address, and the server's session for it. */
async function joined(h: Harness): Promise<{ c: RawWs; addr: number }> {
  const c = await RawWs.open(h.port);
  c.sendStream(extRequest());
  await waitFor(() => c.frames.length >= 1, 3000, 'the reply');
  return { c, addr: readU32(c.frames[0], 16) };
}

test('bad frames close the WebSocket with the status that fits, and only that session', async () => {
  await withServer({ subnet: '10.70.0.0/24' }, async (h) => {
    const before = await baseline();
    const good = h.sdk({ connect: wsTo(h.port) });
    await good.ready();
    const base = handles();
    // The limits on messages hold for a stream that is itself well formed: the server hands
    // a message's bytes on as they come, so a malformed stream would end the session first.
    const dst = (addr: number) => (addr & ~0xff) | 250;
    const cases: Array<[string, (c: RawWs, addr: number) => void, number]> = [
      ['a message over the maximum', (c) => c.write(frame(OP.binary, new Uint8Array(MAX_MESSAGE + 1))), 1009],
      ['a message over the maximum in fragments', (c, addr) => {
        for (let i = 0; i < 5; i++) c.write(frame(i ? OP.cont : OP.binary, ipPacket(addr, dst(addr), 60_000), { fin: false }));
      }, 1009],
      ['a text message', (c) => c.write(frame(OP.text, 'hello')), 1003],
      ['an unmasked frame', (c) => c.write(frame(OP.binary, new Uint8Array(4), { mask: false })), 1002],
      ['a fragmented ping', (c) => c.write(frame(OP.ping, 'x', { fin: false })), 1002],
      ['a control frame over 125 bytes', (c) => c.write(frame(OP.ping, new Uint8Array(126))), 1002],
      ['RSV1 without an extension', (c) => c.write(frame(OP.binary, new Uint8Array(4), { rsv: 4 })), 1002],
      ['an unknown opcode', (c) => c.write(frame(3, new Uint8Array(4))), 1002],
      ['a continuation with nothing to continue', (c) => c.write(frame(OP.cont, new Uint8Array(4))), 1002],
      ['a new message inside a fragmented one', (c, addr) => {
        const p = ipPacket(addr, dst(addr), 100);
        c.write(frame(OP.binary, p.subarray(0, 4), { fin: false }));
        c.write(frame(OP.binary, p.subarray(4, 8)));
      }, 1002],
      ['more than 1024 fragments', (c, addr) => {
        // One packet, a byte per fragment.
        const p = ipPacket(addr, dst(addr), 1200);
        c.write(frame(OP.binary, p.subarray(0, 1), { fin: false }));
        for (let i = 1; i < 1100; i++) c.write(frame(OP.cont, p.subarray(i, i + 1), { fin: false }));
      }, 1008],
    ];
    for (const [what, send, code] of cases) {
      const { c, addr } = await joined(h);
      send(c, addr);
      await c.waitClosed(3000).catch(() => assert.unreachable(`${what}: not closed`));
      assert.is(c.closeCode, code, `${what}: close status`);
      await waitFor(() => h.sessions === 1, 3000, `${what}: its session to end`, () => h.server.clients());
    }
    assert.is(good.state.state, 'ready', 'the other client is untouched');
    await waitFor(() => JSON.stringify(handles()) === JSON.stringify(base), 4000, 'handles as before the bad clients', handles);
    good.close();
    await nothingLeft(h, before, 'after the bad frames');
  });
});

test('ping floods: pings answered as they come are fine; a burst of more than 60 unanswered, or a peer that does not read its pongs, is dropped and nothing is buffered for it', async () => {
  await withServer({ subnet: '10.71.0.0/24' }, async (h) => {
    const before = await baseline();
    const peer = h.sdk();
    await peer.ready();
    const { c, addr } = await joined(h);
    for (let i = 0; i < 50; i++) {
      c.write(Buffer.concat(Array.from({ length: 20 }, (_, j) => frame(OP.ping, `${i}.${j}`))));
      await sleep(2);
    }
    await waitFor(() => c.received.filter((f) => f.opcode === OP.pong).length === 1000, 5000, 'every pong', () => c.received.length);
    const p = ipPacket(addr, peer.address, 200, rng(1));
    c.sendStream(p);
    await waitFor(() => peer.packets.length === 1, 3000, 'the packet after the pings');
    // 2000 pings in one write: ws answers 60 and then drops the connection.
    const burst = await joined(h);
    burst.c.write(Buffer.concat(Array.from({ length: 2000 }, (_, i) => frame(OP.ping, String(i)))));
    await burst.c.waitClosed(3000);
    assert.ok(burst.c.received.filter((f) => f.opcode === OP.pong).length <= 61, 'no more than 60 pongs');
    // A peer that never reads: its pongs pile up in the server's socket until ws gives up on it.
    const deaf = await joined(h);
    deaf.c.sock.pause();
    const big = frame(OP.ping, new Uint8Array(125));
    const end = Date.now() + 15_000;
    while (!deaf.c.closed && Date.now() < end) {
      deaf.c.write(Buffer.concat(Array.from({ length: 50 }, () => big)));
      await sleep(5);
    }
    assert.ok(deaf.c.closed, 'the deaf flooder was dropped');
    await waitFor(() => h.sessions === 2, 3000, 'their sessions to end', () => h.server.clients());
    assert.is(peer.state.state, 'ready');
    c.destroy();
    peer.close();
    await nothingLeft(h, before, 'after the floods');
  });
});

test('the server pings at the keepalive interval; a peer that sends nothing and answers no pong is dropped at the idle timeout', async () => {
  await withServer({ subnet: '10.72.0.0/24', keepalive: 1, idleTimeout: 3 }, async (h) => {
    const before = await baseline();
    const { c } = await joined(h);
    await waitFor(() => c.received.some((f) => f.opcode === OP.ping), 2500, 'a ping from the server');
    const t0 = Date.now();
    await c.waitClosed(5000);
    assert.ok(Date.now() - t0 >= 500, 'dropped at the idle timeout, not at the first ping');
    assert.is(h.metrics.disconnects.idle_timeout, 1);
    await nothingLeft(h, before, 'after the idle drop');
  });
});

test.run();
