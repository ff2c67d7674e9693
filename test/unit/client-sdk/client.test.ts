// The SDK client's state machine, driven through a fake socket and a manual clock: what it
// writes, what it reports, when it keeps alive, gives up and comes back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../../../client-sdk/src/client.js';
import type { ClientOptions, DownInfo, ReadyInfo, StateInfo } from '../../../client-sdk/src/client.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { KEEPALIVE, KIND_REFUSAL, KIND_REQUEST, PROTO_EXT, REFUSE_EXHAUSTED, REFUSE_FULL, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, REFUSE_OUTSIDE, REFUSE_RATE, REFUSE_SHUTDOWN, REFUSE_STORE_UNAVAILABLE, T_AUTH_ID, T_AUTH_PROOF, T_CLIENT, T_GATEWAY, T_KEEPALIVE, T_LEASE, T_MTU, T_PREFIX, T_REASON, type Tlv, eachTlv, extKind, extMessage, readAscii, refusal, u16, u32, u8, E_VERSION, Framer, DST, SRC, formatIPv4, readU32 } from '../../../protocol/index.js';
import { FakeClock, FakeNet, FakeSocket, bytes, concat, dataPacket, echoReply, extReply, hex, ip, seedReply } from '../../support/sdk-fakes.js';

const SEED_KEEPALIVE = '45 14 00 00 00 00 00 00 40 00 00 00 ff ff ff ff ff ff ff ff';
const SEED_DYNAMIC = '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00 00 00';

// random 0.5 puts every backoff delay at 3/4 of its cap: 750, 1500, 3000, 6000 ms...
const BACKOFF = [750, 1500, 3000, 6000, 12000];

function setup(opts: Partial<ClientOptions> = {}) {
  const clock = new FakeClock();
  const net = new FakeNet();
  const tun: Uint8Array[] = [];
  const states: StateInfo[] = [];
  const times: number[] = [];
  const client = new Client({
    connect: net.connect,
    tun: { write: (b, o, n) => void tun.push(b.slice(o, o + n)) },
    clock,
    random: () => 0.5,
    onState: (s) => {
      states.push(s);
      times.push(clock.now());
    },
    ...opts,
  });
  const last = () => states[states.length - 1];
  /** The last report, which must be 'down'. */
  const down = (): DownInfo => {
    const d = last();
    assert.is(d.state, 'down');
    return d as DownInfo;
  };
  /** The last report, which must be 'ready'. */
  const ready = (): ReadyInfo => {
    const r = last();
    assert.is(r.state, 'ready');
    return r as ReadyInfo;
  };
  const downs = () => states.filter((s) => s.state === 'down');
  /** The first 'down' as "at <ms>: <reason>", or null. */
  const firstDown = () => {
    const i = states.findIndex((s) => s.state === 'down');
    return i < 0 ? null : `at ${times[i]} ms: ${text(states[i] as DownInfo)}`;
  };
  return { client, clock, net, tun, states, last, down, ready, downs, firstDown };
}

/** A client that has connected, asked and been answered with `reply`. */
function readyClient(opts: Partial<ClientOptions> = {}, reply = extReply('10.0.0.5', { prefix: 24 })) {
  const s = setup(opts);
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(reply);
  assert.is(s.last().state, 'ready', 'precondition: ready');
  return s;
}

const request = (sock: FakeSocket) => {
  const r = sock.writes[0];
  assert.ok(r, 'a request was written');
  return r;
};
const src = (f: Uint8Array) => formatIPv4(readU32(f, SRC));
const keepalivesWritten = (sock: FakeSocket) => sock.writes.filter((w) => hex(w) === SEED_KEEPALIVE).length;
/** A 'down' as people read it (the Linux client's log line). */
const text = (d: DownInfo) => describeDown(d);
const tlvsOf = (f: Uint8Array) => {
  const t: Tlv[] = [];
  eachTlv(f, (type, v) => t.push([type, v.slice()]));
  return t;
};
const tlvTypes = (f: Uint8Array) => {
  const t: number[] = [];
  eachTlv(f, (type) => t.push(type));
  return t;
};

/**
 * Runs the clock to `until`, stopping at every timer; after each, the server answers every
 * keepalive written since with a keepalive of its own, at the same instant.
 */
function runAnsweringKeepalives(s: ReturnType<typeof setup>, until: number) {
  let answered = new Map<FakeSocket, number>();
  for (let guard = 0; guard < 10_000; guard++) {
    for (const sock of s.net.sockets) {
      const n = keepalivesWritten(sock);
      for (let i = answered.get(sock) ?? 0; i < n && !sock.closed; i++) sock.deliver(KEEPALIVE);
      answered.set(sock, n);
    }
    const next = s.clock.nextAt();
    if (next === null || next > until) break;
    s.clock.advanceTo(next);
  }
  s.clock.advanceTo(until);
}

// ---- the request ------------------------------------------------------------------------------

test('start() opens one connection and writes nothing before it is open; a second start() does nothing', () => {
  const s = setup();
  s.client.start();
  s.client.start();
  assert.is(s.net.sockets.length, 1);
  assert.is(s.net.last.writes.length, 0);
  assert.is(s.last().state, 'connecting');
  assert.is(s.client.stats.connects, 1);
});

test('the dynamic request is one extension message: protocol 253, KIND_REQUEST, source and destination 0.0.0.0', () => {
  const s = setup();
  s.client.start();
  s.net.last.open();
  assert.is(s.net.last.writes.length, 1);
  const r = request(s.net.last);
  assert.is(hex(r), '45 14 00 18 00 00 00 00 40 fd 00 00 00 00 00 00 00 00 00 00 53 56 01 01');
  assert.is(r[9], PROTO_EXT);
  assert.is(extKind(r), KIND_REQUEST);
  const f = new Framer();
  f.push(r);
  assert.equal(f.next(), r, 'the request is exactly one frame');
});

test('the client name and the credentials ride in the extension request', () => {
  const s = setup({ name: 'sensor-7', credentials: { id: 'id-1', secret: 's3cret-value' } });
  s.client.start();
  s.net.last.open();
  const r = request(s.net.last);
  assert.equal(tlvTypes(r), [T_AUTH_ID, T_AUTH_PROOF, T_CLIENT]);
  const values = new Map<number, string>();
  eachTlv(r, (t, v) => values.set(t, readAscii(v)));
  assert.is(values.get(T_CLIENT), 'sensor-7');
  assert.is(values.get(T_AUTH_ID), 'id-1');
  assert.is(values.get(T_AUTH_PROOF), 's3cret-value');
});

test('seed: true sends no credentials (the seed request has no room for them)', () => {
  const s = setup({ seed: true, credentials: { id: 'id-1', secret: 's3cret-value' } });
  s.client.start();
  s.net.last.open();
  assert.is(hex(request(s.net.last)), SEED_DYNAMIC);
});

test('an mtu option asks for that MTU in the request; without it the request asks for none', () => {
  const s = setup({ mtu: 9000 });
  s.client.start();
  s.net.last.open();
  let asked = 0;
  eachTlv(request(s.net.last), (t, v) => t === T_MTU && (asked = (v[0] << 8) | v[1]));
  assert.is(asked, 9000);
  const d = setup();
  d.client.start();
  d.net.last.open();
  assert.not.ok(tlvTypes(request(d.net.last)).includes(T_MTU));
});

test('seed: true writes the byte-exact 20-byte seed dynamic request', () => {
  const s = setup({ seed: true, name: 'ignored' });
  s.client.start();
  s.net.last.open();
  assert.is(hex(request(s.net.last)), SEED_DYNAMIC);
});

test('a static request carries the address in the source field (extension and seed)', () => {
  const ext = setup({ address: '10.0.3.7' });
  ext.client.start();
  ext.net.last.open();
  const r = request(ext.net.last);
  assert.is(extKind(r), KIND_REQUEST);
  assert.is(src(r), '10.0.3.7');
  assert.is(readU32(r, DST), 0);

  const seed = setup({ address: '10.0.3.7', seed: true });
  seed.client.start();
  seed.net.last.open();
  assert.is(hex(request(seed.net.last)), '45 14 00 00 00 00 00 00 40 00 00 00 0a 00 03 07 00 00 00 00');
});

// ---- the reply --------------------------------------------------------------------------------

test('an extension reply makes the client ready with address, prefix, netmask, gateway, mtu and routes', () => {
  const reply = extReply('10.1.2.7', {
    prefix: 24,
    gateway: ip('10.1.2.1'),
    mtu: 1400,
    routes: [
      [ip('192.168.50.0'), 24],
      [ip('172.16.0.0'), 12],
    ],
  });
  const s = readyClient({}, reply);
  assert.equal(s.last(), {
    state: 'ready',
    address: '10.1.2.7',
    prefix: 24,
    netmask: '255.255.255.0',
    gateway: '10.1.2.1',
    mtu: 1400,
    keepalive: 15,
    routes: [
      { network: '192.168.50.0', prefix: 24 },
      { network: '172.16.0.0', prefix: 12 },
    ],
    server: 'simplevpn',
    reply,
  });
  assert.is(s.client.address, '10.1.2.7');
  assert.equal(s.client.info, s.last());
});

test("the ready state's reply is a copy: a Node Buffer the transport reuses may be overwritten after", () => {
  const reply = extReply('10.1.2.7', { prefix: 24, mtu: 1400 });
  const chunk = Buffer.from(reply); // Buffer.prototype.slice is a view, not a copy
  const s = readyClient({}, chunk);
  chunk.fill(0);
  const r = s.last();
  assert.is(r.state === 'ready' && hex(r.reply), hex(reply));
});

test('a seed reply (20 bytes, total length 0) gives the /16 default, no gateway and server "seed"', () => {
  const reply = seedReply('10.0.200.9');
  assert.is(reply.length, 20);
  const s = readyClient({ seed: true }, reply);
  assert.equal(s.last(), {
    state: 'ready',
    address: '10.0.200.9',
    prefix: 16,
    netmask: '255.255.0.0',
    gateway: null,
    mtu: 1500,
    keepalive: 15,
    routes: [],
    server: 'seed',
    reply,
  });
});

test('a seed server echoing the extension request with only the destination rewritten is a seed server; its echoed TLVs are not config', () => {
  const s = setup({ name: 'sensor-7', mtu: 1280 });
  s.client.start();
  s.net.last.open();
  const sent = request(s.net.last);
  // TLVs that would change the configuration if the echo were read as a reply: the
  // request's own MTU and, as the echo of a request that carried them, the others.
  const req = extMessage(readU32(sent, SRC), readU32(sent, DST), KIND_REQUEST, [
    ...tlvsOf(sent),
    [T_PREFIX, u8(24)],
    [T_GATEWAY, u32(ip('10.9.9.9'))],
    [T_KEEPALIVE, u16(99)],
    [T_LEASE, Uint8Array.of(1, 2, 3)],
  ]);
  assert.equal(tlvTypes(req), [T_CLIENT, T_MTU, T_PREFIX, T_GATEWAY, T_KEEPALIVE, T_LEASE]);
  const echo = echoReply(req, '10.0.77.3');
  assert.equal(echo.subarray(0, 16), req.subarray(0, 16));
  assert.equal(echo.subarray(20), req.subarray(20));
  s.net.last.deliver(echo);
  assert.equal(s.last(), {
    state: 'ready',
    address: '10.0.77.3',
    prefix: 16,
    netmask: '255.255.0.0',
    gateway: null,
    mtu: 1500,
    keepalive: 15,
    routes: [],
    server: 'seed',
    reply: echo,
  });
  assert.is(s.client.lease, null);
});

test('a reply whose destination is 0.0.0.0 or 255.255.255.255 is invalid: down and retry', () => {
  for (const bad of [seedReply('0.0.0.0'), KEEPALIVE]) {
    const s = setup();
    s.client.start();
    s.net.last.open();
    s.net.last.deliver(bad);
    assert.is(s.last().state, 'down', hex(bad));
    assert.is(s.down().reason, 'protocol_error');
    assert.match(text(s.down()), /invalid address reply/);
    assert.ok(s.net.last.closed);
    s.clock.advance(s.down().retryIn);
    assert.is(s.net.sockets.length, 2);
  }
});

// ---- refusals ---------------------------------------------------------------------------------

test('a static address refused the seed way (end of stream during the request) → down with a reason, retried after the backoff delay', () => {
  const s = setup({ address: '10.0.3.7' });
  s.client.start();
  s.net.last.open();
  s.net.last.end('end of stream');
  const d = s.down();
  assert.is(d.reason, 'refused');
  assert.match(text(d), /address request/);
  assert.is(d.code, REFUSE_IN_USE);
  assert.is(d.retryIn, BACKOFF[0]);
  assert.is(s.clock.pending, 1, 'only the retry timer');
  s.clock.advance(BACKOFF[0] - 1);
  assert.is(s.net.sockets.length, 1, 'no retry before the delay');
  s.clock.advance(1);
  assert.is(s.net.sockets.length, 2);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.3.7');
});

test('an extension refusal with a code and text → down reporting both, the socket closed', () => {
  const s = setup({ address: '10.0.3.7' });
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(refusal(ip('10.0.3.7'), REFUSE_EXHAUSTED, 'pool exhausted'));
  assert.is(s.down().reason, 'refused');
  assert.is(s.down().code, REFUSE_EXHAUSTED);
  assert.is(s.down().detail, 'pool exhausted');
  assert.match(text(s.down()), /pool exhausted/);
  assert.ok(s.net.last.closed);
  assert.is(s.down().retryIn, BACKOFF[0]);
});

test('a refusal with a code and no text reports the code in the reason', () => {
  const s = setup();
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(extMessage(0, 0, KIND_REFUSAL, [[T_REASON, u8(9)]]));
  assert.is(s.down().reason, 'refused');
  assert.is(s.down().code, 9);
  assert.match(s.down().detail, /code 9/);
});

// ---- data -------------------------------------------------------------------------------------

const p1 = dataPacket('10.0.0.1', '10.0.0.5', 12, 1);
const p2 = dataPacket('192.168.50.3', '10.0.0.5', 300, 2);

test('data packets after the reply in the same chunk are delivered to the tun, byte for byte', () => {
  const s = setup();
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(concat(extReply('10.0.0.5'), p1, p2));
  assert.is(s.last().state, 'ready');
  assert.equal(s.tun, [p1, p2]);
  assert.is(s.client.stats.rxPackets, 2);
  assert.is(s.client.stats.rxBytes, p1.length + p2.length);
});

test('reply and data split across chunks at any byte, or one byte at a time, still deliver every packet', () => {
  const reply = seedReply('10.0.0.5');
  const stream = concat(reply, p1, p2);
  const chunkings: Uint8Array[][] = [];
  for (let cut = 1; cut < stream.length; cut++) chunkings.push([stream.subarray(0, cut), stream.subarray(cut)]);
  chunkings.push(Array.from(stream, (b) => Uint8Array.of(b)));
  for (const chunks of chunkings) {
    const s = setup({ seed: true });
    s.client.start();
    s.net.last.open();
    s.net.last.deliver(...chunks.map((c) => c.slice()));
    assert.is(s.last().state, 'ready');
    assert.equal(s.tun, [p1, p2], `cut after ${chunks[0].length}`);
  }
});

test('keepalives and extension messages arriving when ready are not delivered to the tun', () => {
  const s = readyClient();
  s.net.last.deliver(concat(KEEPALIVE, extReply('10.0.0.5'), p1));
  assert.equal(s.tun, [p1]);
  assert.is(s.client.stats.rxPackets, 1);
});

test('a tun write that closes the client stops the rest of the chunk', () => {
  let writes = 0;
  let client: Client | null = null;
  const s = setup({ tun: { write: () => (writes++, client!.close()) } });
  client = s.client;
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(concat(extReply('10.0.0.5'), p1, p2));
  assert.is(writes, 1);
  assert.is(s.last().state, 'closed');
});

// ---- keepalive --------------------------------------------------------------------------------

test('after 15 s of silence exactly the seed keepalive bytes are written, once', () => {
  const s = readyClient();
  const sock = s.net.last;
  s.clock.advance(14_999);
  assert.is(sock.writes.length, 1, 'only the request so far');
  s.clock.advance(1);
  assert.is(sock.writes.length, 2);
  assert.is(hex(sock.last!), SEED_KEEPALIVE);
  assert.is(s.client.stats.keepalives, 1);
  s.clock.advance(9_999);
  assert.is(sock.writes.length, 2, 'one keepalive per silence');
  assert.is(s.last().state, 'ready');
});

test('anything received postpones the keepalive', () => {
  const s = readyClient();
  s.clock.advance(10_000);
  s.net.last.deliver(p1);
  s.clock.advance(14_999);
  assert.is(keepalivesWritten(s.net.last), 0);
  s.clock.advance(1);
  assert.is(keepalivesWritten(s.net.last), 1);
});

test('an answer to the keepalive cancels the dead timer and the next silence gets a new keepalive', () => {
  const s = readyClient();
  s.clock.advanceTo(15_000);
  assert.is(keepalivesWritten(s.net.last), 1);
  s.clock.advanceTo(16_000);
  s.net.last.deliver(KEEPALIVE);
  s.clock.advanceTo(30_999);
  assert.is(s.downs().length, 0, 'alive past the first deadline (25 s)');
  assert.is(keepalivesWritten(s.net.last), 1);
  s.clock.advanceTo(31_000);
  assert.is(keepalivesWritten(s.net.last), 2, 'second keepalive 15 s after the answer');
  assert.is(s.last().state, 'ready');
});

test('no answer within the timeout after a keepalive → down (keepalive) and a new connection after the backoff', () => {
  const s = readyClient();
  const first = s.net.last;
  s.clock.advanceTo(24_999);
  assert.is(s.last().state, 'ready');
  s.clock.advanceTo(25_000);
  assert.is(s.down().reason, 'keepalive_timeout');
  assert.match(text(s.down()), /keepalive/);
  assert.ok(first.closed, 'the dead socket is closed');
  s.clock.advance(s.down().retryIn);
  assert.is(s.net.sockets.length, 2);
  assert.is(s.last().state, 'connecting');
});

test('a server answering every keepalive at once keeps the link up (keepalive 5 s, timeout 10 s)', () => {
  const s = readyClient({ keepalive: 5, timeout: 10 });
  runAnsweringKeepalives(s, 60_000);
  assert.is(s.firstDown(), null, 'never down while every keepalive is answered');
  assert.ok(keepalivesWritten(s.net.sockets[0]) >= 4, `keepalives kept going: ${keepalivesWritten(s.net.sockets[0])}`);
});

test('a server answering every keepalive at once keeps the link up (keepalive 1 s, timeout 1 s)', () => {
  const s = readyClient({ keepalive: 1, timeout: 1 });
  runAnsweringKeepalives(s, 20_000);
  assert.is(s.firstDown(), null, 'never down while every keepalive is answered');
  assert.ok(keepalivesWritten(s.net.sockets[0]) >= 10, `keepalives kept going: ${keepalivesWritten(s.net.sockets[0])}`);
});

test('a keepalive interval pushed by the server replaces the configured one', () => {
  const s = readyClient({}, extReply('10.0.0.5', { keepalive: 30 }));
  assert.is(s.ready().keepalive, 30);
  s.clock.advanceTo(29_999);
  assert.is(keepalivesWritten(s.net.last), 0);
  s.clock.advanceTo(30_000);
  assert.is(keepalivesWritten(s.net.last), 1);
});

test('an idle timeout pushed by the server brings the keepalive interval down to half of it', () => {
  const s = readyClient({}, extReply('10.0.0.5', { idleTimeout: 20 }));
  assert.is(s.ready().keepalive, 10);
  s.clock.advanceTo(9_999);
  assert.is(keepalivesWritten(s.net.last), 0);
  s.clock.advanceTo(10_000);
  assert.is(keepalivesWritten(s.net.last), 1);
});

test('0 for keepalive, timeout or a backoff bound means its default, never a storm of keepalives or reconnects', () => {
  const s = readyClient({ keepalive: 0, timeout: 0, minBackoff: 0, maxBackoff: 0 }, seedReply('10.0.0.5'));
  assert.is(s.ready().keepalive, 15);
  s.clock.advance(14_999);
  assert.is(keepalivesWritten(s.net.last), 0);
  s.clock.advance(1);
  assert.is(keepalivesWritten(s.net.last), 1);
  s.clock.advance(9_999);
  assert.is(s.last().state, 'ready', 'the 10 s timeout');
  s.clock.advance(1);
  assert.is(s.down().retryIn, BACKOFF[0]);
});

// ---- reconnect --------------------------------------------------------------------------------

test('after a lost connection the client asks again for the address it had', () => {
  const s = readyClient({}, extReply('10.0.0.5'));
  s.net.last.end('end of stream');
  assert.is(s.down().reason, 'closed');
  assert.is(s.down().code, 0);
  assert.match(text(s.down()), /connection closed: end of stream/);
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  const r = request(s.net.last);
  assert.is(extKind(r), KIND_REQUEST);
  assert.is(src(r), '10.0.0.5');
});

test('a seed client reconnects with a seed static request for the address it had', () => {
  const s = readyClient({ seed: true }, seedReply('10.0.200.9'));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(hex(request(s.net.last)), '45 14 00 00 00 00 00 00 40 00 00 00 0a 00 c8 09 00 00 00 00');
});

test('when a seed server refuses the previous address (closes during the request), the next attempt is dynamic', () => {
  const s = readyClient({}, seedReply('10.0.0.5'));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.0.5');
  s.net.last.end('end of stream'); // refused: closed during the request
  assert.is(s.down().code, REFUSE_IN_USE);
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '0.0.0.0');
});

test('after an extension reply, a close during the request is a lost connection: the same address is asked for again', () => {
  const s = readyClient({}, extReply('10.0.0.5'));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  s.net.last.end('end of stream'); // e.g. a server restarting, or refusing admission before reading
  assert.is(s.down().reason, 'closed');
  assert.is(s.down().code, 0);
  assert.match(text(s.down()), /connection closed: end of stream/);
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.0.5');
});

test('a seed server\'s refusal is known by the close code, whatever words the transport uses', () => {
  for (const detail of [undefined, 'end of stream', 'peer closed', 'socket error or closed by peer']) {
    const s = setup({ address: '10.0.3.7' });
    s.client.start();
    s.net.last.open();
    s.net.last.end(detail);
    assert.is(s.down().reason, 'refused', String(detail));
    assert.is(s.down().code, REFUSE_IN_USE, String(detail));
  }
});

test('an error during the request (a reset, a TLS alert) is a lost connection, not a refusal, even from a seed server', () => {
  const s = readyClient({}, seedReply('10.0.0.5'));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  s.net.last.fail('error', 'ECONNRESET');
  assert.is(s.down().reason, 'closed');
  assert.is(s.down().code, 0);
  assert.match(text(s.down()), /connection closed: ECONNRESET/);
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.0.5', 'the same address asked for again');
});

test('a failure the transport recognised is the reason, with its words and the certificate\'s names', () => {
  const s = setup();
  s.client.start();
  s.net.last.fail('certificate_name', "the server's certificate is not for a.example: it is for b.example (ERR_TLS_CERT_ALTNAME_INVALID)", ['b.example']);
  assert.equal(s.down(), {
    state: 'down',
    reason: 'certificate_name',
    detail: "the server's certificate is not for a.example: it is for b.example (ERR_TLS_CERT_ALTNAME_INVALID)",
    code: 0,
    retryIn: BACKOFF[0],
    names: ['b.example'],
  });
  s.clock.advance(s.down().retryIn);
  s.net.last.fail('not_tls');
  assert.is(s.down().reason, 'not_tls');
  assert.is(text(s.down()), 'not_tls', 'no words from the transport: the code');
});

test('a TLS alert where the reply should begin: expects_tls', () => {
  const s = setup();
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(bytes('15 03 03 00 02 02 0a'));
  assert.is(s.down().reason, 'expects_tls');
  assert.is(text(s.down()), 'the server expects TLS on this port');
  assert.ok(s.net.last.closed);
});

test('a Connect that throws is a failed attempt: down with the error, then another attempt after the backoff', () => {
  let calls = 0;
  const s = setup();
  const inner = s.net.connect;
  const c = new Client({
    connect: (h) => {
      if (++calls === 1) throw new Error('no modem');
      return inner(h);
    },
    tun: { write() {} },
    clock: s.clock,
    random: () => 0.5,
    onState: (st) => s.states.push(st),
  });
  c.start();
  assert.is(s.down().reason, 'connect_failed');
  assert.match(text(s.down()), /could not connect: Error: no modem/);
  s.clock.advance(s.down().retryIn);
  assert.is(calls, 2);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '0.0.0.0');
  c.close();
  assert.is(s.clock.pending, 0);
});

test('when the previous address is refused by an extension refusal, the next attempt is dynamic', () => {
  const s = readyClient({}, extReply('10.0.0.5'));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  s.net.last.deliver(refusal(ip('10.0.0.5'), REFUSE_IN_USE, 'taken'));
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '0.0.0.0');
});

test('a user-given static address is asked for again after every kind of refusal', () => {
  const s = setup({ address: '10.0.3.7' });
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(refusal(ip('10.0.3.7'), REFUSE_IN_USE, 'taken'));
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.3.7');
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.3.7');
  assert.is(s.net.sockets.length, 3);
});

test('backoff grows across consecutive failures and starts over after a successful ready', () => {
  const s = setup();
  s.client.start();
  for (let i = 0; i < 4; i++) {
    s.net.last.fail('connect_failed', 'ECONNREFUSED');
    assert.is(s.down().retryIn, BACKOFF[i], `failure ${i + 1}`);
    s.clock.advance(s.down().retryIn);
  }
  s.net.last.open();
  s.net.last.deliver(extReply('10.0.0.5'));
  assert.is(s.last().state, 'ready');
  s.net.last.end();
  assert.is(s.down().retryIn, BACKOFF[0], 'reset after ready');
  s.clock.advance(s.down().retryIn);
  s.net.last.end();
  assert.is(s.down().retryIn, BACKOFF[1]);
});

test('no connection within the timeout → down ("could not connect") and the socket closed', () => {
  const s = setup({ timeout: 3 });
  s.client.start();
  s.clock.advance(2_999);
  assert.is(s.last().state, 'connecting');
  s.clock.advance(1);
  assert.is(s.down().reason, 'connect_timeout');
  assert.match(text(s.down()), /could not connect/);
  assert.ok(s.net.last.closed);
});

test('no reply within the timeout → down ("no reply") and the socket closed', () => {
  const s = setup({ timeout: 3 });
  s.client.start();
  s.clock.advance(1_000);
  s.net.last.open();
  s.clock.advance(2_999);
  assert.is(s.downs().length, 0);
  s.clock.advance(1);
  assert.is(s.down().reason, 'request_timeout');
  assert.match(text(s.down()), /no reply/);
  assert.ok(s.net.last.closed);
});

test('a lease from the reply is presented on reconnect and forgotten after a refusal', () => {
  const lease = Uint8Array.of(7, 7, 7, 7);
  const s = readyClient({}, extReply('10.0.0.5', { lease }));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  let presented: Uint8Array | null = null;
  eachTlv(request(s.net.last), (t, v) => t === T_LEASE && (presented = v.slice()));
  assert.equal(presented, lease);
  s.net.last.deliver(refusal(ip('10.0.0.5'), REFUSE_IN_USE, 'taken'));
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  assert.not.ok(tlvTypes(request(s.net.last)).includes(T_LEASE));
});

/** A client ready with 10.0.0.5 and a lease, reconnecting, refused with `code`: what it asks for next. */
function afterRefusal(code: number): { address: string; lease: Uint8Array | null } {
  const lease = Uint8Array.of(7, 7, 7, 7);
  const s = readyClient({}, extReply('10.0.0.5', { lease }));
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  s.net.last.deliver(refusal(ip('10.0.0.5'), code, 'refused'));
  assert.is(s.down().code, code);
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  const r = request(s.net.last);
  let presented: Uint8Array | null = null;
  eachTlv(r, (t, v) => t === T_LEASE && (presented = v.slice()));
  return { address: src(r), lease: presented };
}

test('refused because the server cannot take anyone now (store unavailable, rate, full, shutdown): address and lease are asked for again', () => {
  for (const code of [REFUSE_STORE_UNAVAILABLE, REFUSE_RATE, REFUSE_FULL, REFUSE_SHUTDOWN]) {
    const next = afterRefusal(code);
    assert.is(next.address, '10.0.0.5', `code ${code}`);
    assert.equal(next.lease, Uint8Array.of(7, 7, 7, 7), `code ${code}`);
  }
});

test('refused for the address or the credentials: the next request is dynamic and carries no lease', () => {
  for (const code of [REFUSE_IN_USE, REFUSE_OUTSIDE, REFUSE_EXHAUSTED, REFUSE_NOT_ALLOWED]) {
    const next = afterRefusal(code);
    assert.is(next.address, '0.0.0.0', `code ${code}`);
    assert.is(next.lease, null, `code ${code}`);
  }
});

test('events from a replaced socket are ignored', () => {
  const s = readyClient();
  const old = s.net.last;
  old.end();
  s.clock.advance(s.down().retryIn);
  const n = s.states.length;
  old.h.onOpen();
  old.h.onData(concat(extReply('10.0.0.99'), p1));
  old.h.onClose('error', 'late');
  assert.is(s.states.length, n);
  assert.equal(s.tun, []);
  assert.is(old.lateWrites, 0);
  assert.is(s.net.sockets.length, 2);
});

// ---- send -------------------------------------------------------------------------------------

const out = dataPacket('10.0.0.5', '10.0.0.1', 40);

test('send() before ready drops the packet and counts it', () => {
  const s = setup();
  assert.is(s.client.send(out), false, 'idle');
  s.client.start();
  assert.is(s.client.send(out), false, 'connecting');
  s.net.last.open();
  assert.is(s.client.send(out), false, 'requesting');
  s.net.last.end();
  assert.is(s.client.send(out), false, 'down');
  assert.is(s.client.stats.dropped, 4);
  assert.is(s.client.stats.txPackets, 0);
  assert.is(s.net.sockets[0].writes.length, 1, 'only the request was written');
});

test('send() when the socket is full (write takes nothing) drops the packet and counts it', () => {
  const s = readyClient();
  s.net.last.full = true;
  assert.is(s.client.send(out), false);
  assert.is(s.client.stats.dropped, 1);
  assert.is(s.client.stats.txPackets, 0);
  assert.is(s.client.stats.txBytes, 0);
  s.net.last.full = false;
  assert.is(s.client.send(out), true);
});

test('send() drops bytes that are not whole well-formed frames', () => {
  const s = readyClient({ maxFrame: 1000 });
  const truncated = out.subarray(0, out.length - 1);
  const trailing = concat(out, Uint8Array.of(0));
  const twoThenPart = concat(out, out, out.subarray(0, 10));
  const v5 = out.slice();
  v5[0] = 0x55;
  const ihl4 = out.slice();
  ihl4[0] = 0x44;
  const big = dataPacket('10.0.0.5', '10.0.0.1', 1200);
  const shortV6 = Uint8Array.of(0x60, 0, 0, 0, 0);
  const cases = { truncated, trailing, twoThenPart, v5, ihl4, big, shortV6 };
  for (const [name, p] of Object.entries(cases)) assert.is(s.client.send(p), false, name);
  // twoThenPart counts as one drop: the whole buffer is refused before it is cut up.
  assert.is(s.client.stats.dropped, Object.keys(cases).length);
  assert.is(s.net.last.writes.length, 1, 'nothing but the request reached the socket');
});

test('send() takes several whole frames back to back as one write and counts each packet', () => {
  const s = readyClient();
  const batch = concat(out, dataPacket('10.0.0.5', '10.0.0.9', 300), out);
  assert.ok(s.client.send(batch));
  assert.is(s.net.last.writes.length, 2, 'the request, then the batch in one write');
  assert.equal(s.net.last.writes[1], batch);
  assert.is(s.client.stats.txPackets, 3);
  assert.is(s.client.stats.txBytes, batch.length);
});

test('send() drops an empty packet', () => {
  const s = readyClient();
  assert.is(s.client.send(new Uint8Array(0)), false);
  assert.is(s.client.stats.dropped, 1);
  assert.is(s.client.stats.txPackets, 0);
});

test('send() writes the packet unchanged and counts it', () => {
  const s = readyClient();
  const v6 = new Uint8Array(48);
  v6[0] = 0x60;
  v6[5] = 8;
  assert.is(s.client.send(out), true);
  assert.is(s.client.send(v6), true);
  assert.equal(s.net.last.writes.slice(1), [out, v6]);
  assert.is(s.client.stats.txPackets, 2);
  assert.is(s.client.stats.txBytes, out.length + v6.length);
  assert.is(s.client.stats.dropped, 0);
});

// ---- partial writes ---------------------------------------------------------------------------

const p3 = dataPacket('10.0.0.5', '10.0.0.9', 100, 3);

test('a write that takes part of a packet: the rest goes on onWritable, and the stream stays whole', () => {
  const s = readyClient();
  const sock = s.net.last;
  sock.room = 10;
  assert.is(s.client.send(out), true, 'taken, in part');
  assert.equal(sock.last, out.subarray(0, 10));
  assert.is(s.client.stats.txPackets, 1);
  assert.is(s.client.stats.txBytes, out.length);
  sock.drain(5);
  assert.equal(sock.last, out.subarray(10, 15));
  sock.drain();
  assert.equal(sock.last, out.subarray(15));
  const f = new Framer();
  f.push(sock.stream);
  assert.equal(f.next(), request(sock));
  assert.equal(f.next(), out, 'the packet arrives whole after the request');
  assert.is(f.next(), null);
  assert.ok(s.client.send(p1), 'whole packets go again');
  assert.equal(sock.last, p1);
});

test('while a tail waits, whole packets are dropped and counted, and no keepalive is cut in between', () => {
  const s = readyClient();
  const sock = s.net.last;
  sock.room = 1;
  assert.ok(s.client.send(out));
  const batch = concat(p1, p2);
  assert.is(s.client.send(p1), false);
  assert.is(s.client.send(batch), false);
  assert.is(s.client.stats.dropped, 3, 'one packet, then a batch of two');
  assert.is(s.client.stats.txPackets, 1);
  s.clock.advance(15_000); // a keepalive is due: it must not land inside the packet
  assert.is(s.client.stats.keepalives, 1);
  sock.drain();
  const f = new Framer();
  f.push(sock.stream);
  assert.equal(f.next(), request(sock));
  assert.equal(f.next(), out);
  assert.is(f.next(), null, 'nothing but whole frames');
});

test('a batch cut inside its second packet keeps that packet\'s tail and drops the whole packets after it', () => {
  const s = readyClient();
  const sock = s.net.last;
  const batch = concat(out, p3, p1, p2);
  sock.room = out.length + 7;
  assert.ok(s.client.send(batch));
  assert.is(s.client.stats.txPackets, 2);
  assert.is(s.client.stats.txBytes, out.length + p3.length);
  assert.is(s.client.stats.dropped, 2);
  sock.drain();
  assert.equal(sock.last, p3.subarray(7), 'exactly the tail, at most one packet\'s remainder');
  const f = new Framer();
  f.push(sock.stream.subarray(request(sock).length));
  assert.equal(f.next(), out);
  assert.equal(f.next(), p3);
  assert.is(f.next(), null);
});

test('a batch cut at a packet boundary keeps no tail: the packets after it are dropped', () => {
  const s = readyClient();
  const sock = s.net.last;
  sock.room = out.length;
  assert.ok(s.client.send(concat(out, p1)));
  assert.is(s.client.stats.txPackets, 1);
  assert.is(s.client.stats.dropped, 1);
  sock.room = Infinity;
  assert.ok(s.client.send(p2), 'nothing waits: the next packet goes at once');
  assert.equal(sock.last, p2);
});

test('a request cut short is completed on onWritable', () => {
  const s = setup({ name: 'sensor-7' });
  s.client.start();
  s.net.last.room = 3;
  s.net.last.open();
  s.net.last.drain();
  const f = new Framer();
  f.push(s.net.last.stream);
  const r = f.next()!;
  assert.is(extKind(r), KIND_REQUEST);
  assert.equal(tlvTypes(r), [T_CLIENT]);
});

test('an adapter written when write() returned a boolean still works: true is all, false none', () => {
  const s = readyClient();
  const sock = s.net.last;
  const legacy = sock as unknown as { write(d: Uint8Array): unknown };
  const real = sock.write.bind(sock);
  legacy.write = (d: Uint8Array) => real(d) === d.length;
  assert.ok(s.client.send(out));
  sock.full = true;
  assert.is(s.client.send(p1), false);
  sock.full = false;
  assert.ok(s.client.send(p2));
  assert.equal(sock.writes.slice(1), [out, p2]);
  assert.is(s.client.stats.dropped, 1);
});

test('with onWritable set, a send a full socket refused is not counted, and onWritable says when to send it again', () => {
  let writable = 0;
  const s = readyClient({ onWritable: () => writable++ });
  const sock = s.net.last;
  sock.room = 0;
  assert.is(s.client.send(p1), false, 'refused');
  assert.is(s.client.stats.dropped, 0, 'not dropped: the caller keeps it');
  assert.is(s.client.stats.txPackets, 0);
  sock.drain();
  assert.is(writable, 1);
  assert.ok(s.client.send(p1), 'sent again');
  assert.equal(sock.last, p1);
  assert.is(s.client.stats.txPackets, 1);
});

test('with onWritable set, a tail goes first and onWritable follows only once it has all gone', () => {
  let writable = 0;
  const s = readyClient({ onWritable: () => writable++ });
  const sock = s.net.last;
  sock.room = 10;
  assert.ok(s.client.send(out));
  assert.is(s.client.send(p1), false, 'the tail waits');
  assert.is(s.client.stats.dropped, 0);
  sock.drain(5);
  assert.is(writable, 0, 'part of the tail is still waiting');
  sock.drain();
  assert.is(writable, 1);
  assert.equal(sock.last, out.subarray(15));
});

test('with onWritable set, what waiting cannot cure is still dropped and counted: not connected, malformed', () => {
  const s = setup({ onWritable: () => {} });
  assert.is(s.client.send(p1), false);
  assert.is(s.client.stats.dropped, 1, 'not connected');
  const r = readyClient({ onWritable: () => {} });
  assert.is(r.client.send(p1.subarray(0, 10)), false);
  assert.is(r.client.stats.dropped, 1, 'not a whole frame');
});

test('a tail dies with its connection: the next one starts clean', () => {
  const s = readyClient();
  s.net.last.room = 10;
  s.client.send(out);
  s.net.last.end();
  s.clock.advance(s.down().retryIn);
  s.net.last.open();
  s.net.last.deliver(extReply('10.0.0.5'));
  assert.ok(s.client.send(p1));
  assert.equal(s.net.last.writes.slice(1), [p1]);
  s.net.sockets[0].h.onWritable(); // stale: ignored
  assert.is(s.net.sockets[0].lateWrites, 0);
});

// ---- close ------------------------------------------------------------------------------------

const phases: Array<[string, (s: ReturnType<typeof setup>) => void]> = [
  ['idle', () => {}],
  ['connecting', (s) => s.client.start()],
  [
    'requesting',
    (s) => {
      s.client.start();
      s.net.last.open();
    },
  ],
  [
    'ready',
    (s) => {
      s.client.start();
      s.net.last.open();
      s.net.last.deliver(extReply('10.0.0.5'));
    },
  ],
  [
    'ready, keepalive out',
    (s) => {
      s.client.start();
      s.net.last.open();
      s.net.last.deliver(extReply('10.0.0.5'));
      s.clock.advance(15_000);
    },
  ],
  [
    'down',
    (s) => {
      s.client.start();
      s.net.last.end();
    },
  ],
];

for (const [name, reach] of phases) {
  test(`close() when ${name} stops every timer and the socket and emits "closed"`, () => {
    const s = setup();
    reach(s);
    s.client.close();
    assert.is(s.last().state, 'closed');
    assert.is(s.client.info.state, 'closed');
    assert.is(s.clock.pending, 0, 'no timer left');
    for (const sock of s.net.sockets) assert.ok(sock.closed, 'socket closed');
    s.client.close();
    s.client.start();
    s.clock.advance(120_000);
    assert.is(s.states.filter((x) => x.state === 'closed').length, 1, '"closed" once');
    assert.is(s.last().state, 'closed', 'nothing after closed');
    assert.is(s.net.sockets.length, name === 'idle' ? 0 : 1, 'no new connection');
  });
}

test('after close() no callback does anything: socket events, timers, send', () => {
  const s = readyClient();
  const sock = s.net.last;
  s.clock.advance(15_000); // a keepalive outstanding
  const writes = sock.writes.length;
  s.client.close();
  const n = s.states.length;
  sock.h.onOpen();
  sock.h.onData(concat(extReply('10.0.0.9'), p1, KEEPALIVE));
  sock.h.onWritable();
  sock.h.onClose('error', 'late');
  for (const fn of s.clock.scheduled) fn(); // even timers that were cleared
  assert.is(s.client.send(out), false);
  assert.is(s.states.length, n, 'no state change');
  assert.equal(s.tun, []);
  assert.is(sock.writes.length, writes);
  assert.is(sock.lateWrites, 0);
  assert.is(s.net.sockets.length, 1, 'no reconnect');
  assert.is(s.clock.pending, 0);
});

// ---- awkward sockets and servers --------------------------------------------------------------

test('a socket whose onClose fires synchronously inside connect() does not break the client', () => {
  const s = setup();
  s.net.onConnect = (sock, i) => i === 0 && sock.fail('connect_failed', 'ECONNREFUSED');
  s.client.start();
  assert.is(s.down().reason, 'connect_failed');
  assert.match(text(s.down()), /ECONNREFUSED/);
  assert.is(s.clock.pending, 1, 'only the retry timer');
  s.clock.advance(s.down().retryIn);
  assert.is(s.net.sockets.length, 2);
  s.net.last.open();
  s.net.last.deliver(extReply('10.0.0.5'));
  assert.is(s.last().state, 'ready');
  assert.ok(s.client.send(out));
});

test('a socket whose onOpen fires synchronously inside connect() gets the request', () => {
  const s = setup();
  s.net.onConnect = (sock) => sock.open();
  try {
    s.client.start();
  } catch (e) {
    assert.unreachable('start() threw: ' + (e as Error).message);
  }
  assert.is(s.net.last.writes.length, 1);
  assert.is(extKind(request(s.net.last)), KIND_REQUEST);
  s.net.last.deliver(extReply('10.0.0.5'));
  assert.is(s.last().state, 'ready');
});

test('garbage from the server when ready → down with the framer error, socket closed, reconnect', () => {
  const s = readyClient();
  const sock = s.net.last;
  sock.deliver(concat(p1, bytes('50 01 02 03')));
  assert.equal(s.tun, [p1], 'the good packet before the garbage still arrives');
  assert.is(s.down().reason, 'protocol_error');
  assert.ok(text(s.down()).includes(E_VERSION), text(s.down()));
  assert.ok(sock.closed);
  s.clock.advance(s.down().retryIn);
  assert.is(s.net.sockets.length, 2);
  s.net.last.open();
  assert.is(src(request(s.net.last)), '10.0.0.5', 'a protocol error is not a refusal: same address asked');
});

test('garbage from the server during the request → down with the framer error', () => {
  const s = setup();
  s.client.start();
  s.net.last.open();
  s.net.last.deliver(bytes('43 00 00 00'));
  assert.is(s.down().reason, 'protocol_error');
  assert.match(text(s.down()), /header length/);
  assert.ok(s.net.last.closed);
});

// ---- the default clock ------------------------------------------------------------------------

test('without a clock the client reads performance.now() where there is one, Date.now() otherwise', () => {
  const g = globalThis as { performance?: unknown };
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'performance');
  const now = (c: Client) => (c as unknown as { clock: { now(): number } }).clock.now();
  const make = () => new Client({ connect: new FakeNet().connect, tun: { write() {} } });
  try {
    Object.defineProperty(globalThis, 'performance', { value: { now: () => 42.5 }, configurable: true, writable: true });
    assert.is(now(make()), 42.5);
    delete g.performance;
    const t = Date.now();
    const d = now(make());
    assert.ok(d >= t && d <= Date.now(), String(d));
  } finally {
    if (saved) Object.defineProperty(globalThis, 'performance', saved);
  }
});

test.run();
