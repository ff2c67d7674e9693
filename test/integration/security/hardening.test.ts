// Hardening: property-based fuzzing of the server over raw connections (plain and TLS) with
// random bytes and mutated valid frames: requests and extension requests with random TLVs
// (credentials, leases, huge, zero and truncated lengths), keepalives, data from spoofed and
// own sources, IPv6, truncations, random chunkings. The server must never throw, never leak a
// session or an address, and a bystander pair must keep exchanging packets throughout. Then:
// spoofing over TLS, and a slow TLS reader held at its send-queue cap.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { KEEPALIVE, T_AUTH_ID, T_AUTH_PROOF, T_CLIENT, T_LEASE, T_REASON, T_TEXT, controlMessage, credentials, DST, readU32 } from '../../../protocol/index.js';
import { type Harness, RawClient, type SdkPeer, equalBytes, extRequest, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { createLogger } from '../../../common/log.js';
import { type Pki, type TestClient, crashGuard, credsOf, makePki, newSecret, rawTls, tlsSdk, writeAuth } from '../../support/security-kit.js';
import { TURN_ALLOWANCE } from '../../../server/src/transport/turn-writes.js';

let pki: Pki;
let tmp = '';
test.before(() => {
  pki = makePki(['127.0.0.1']);
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-hard-'));
});
test.after(() => {
  pki?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const SUBNET = '10.1.0.0/24';
const FIXED_ADDR = '10.1.0.200';
const BYSTANDER_A: TestClient = { id: 'bystander-a', secret: newSecret() };
const BYSTANDER_B: TestClient = { id: 'bystander-b', secret: newSecret() };
const FUZZER: TestClient = { id: 'fuzzer', secret: newSecret() };
const FUZZ_FIXED: TestClient = { id: 'fuzz-fixed', secret: newSecret(), address: FIXED_ADDR };

// ---- descriptors of hostile input (symbolic, so fast-check can shrink and replay them) ------------

const SYMS = ['me', 'a', 'b', 'gw', 'any', 'all', 'fixed', 'net', 'bcast', 'out'] as const;
type Addr = (typeof SYMS)[number] | number;
interface Ctx {
  me: number;
  a: number;
  b: number;
}

function resolve(x: Addr, c: Ctx): number {
  if (typeof x === 'number') return x >>> 0;
  switch (x) {
    case 'me':
      return c.me;
    case 'a':
      return c.a;
    case 'b':
      return c.b;
    case 'gw':
      return ip('10.1.0.1');
    case 'any':
      return 0;
    case 'all':
      return 0xffffffff;
    case 'fixed':
      return ip(FIXED_ADDR);
    case 'net':
      return ip('10.1.0.0');
    case 'bcast':
      return ip('10.1.0.255');
    case 'out':
      return ip('192.168.77.7');
  }
}

const addrArb: fc.Arbitrary<Addr> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...SYMS) },
  { weight: 1, arbitrary: fc.integer({ min: ip('10.1.0.0'), max: ip('10.1.0.255') }) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) },
);

type TlvD =
  | { t: number; v: Uint8Array } // well-formed (a value over 255 bytes wraps its length byte)
  | { cred: 'good' | 'fixed' | 'wrong' | 'unknown' | 'bystander-wrong' }
  | { raw: [type: number, claimed: number, bytes: Uint8Array] }; // claimed length need not match

const tlvArb: fc.Arbitrary<TlvD> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constantFrom(T_CLIENT, T_LEASE, T_AUTH_ID, T_AUTH_PROOF, T_REASON, T_TEXT, 0, 1, 7, 99, 255), v: fc.uint8Array({ maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constantFrom(T_LEASE, T_AUTH_PROOF, T_AUTH_ID, T_CLIENT), v: fc.uint8Array({ minLength: 250, maxLength: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constantFrom(T_LEASE, T_AUTH_PROOF, T_AUTH_ID), v: fc.constant(new Uint8Array(0)) }) },
  { weight: 3, arbitrary: fc.record({ cred: fc.constantFrom('good', 'fixed', 'wrong', 'unknown', 'bystander-wrong') }) as fc.Arbitrary<TlvD> },
  { weight: 2, arbitrary: fc.record({ raw: fc.tuple(fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 12 })) }) },
);

type PieceD =
  | { k: 'data'; src: Addr; dst: Addr; size: number; seed: number; ihl: number }
  | { k: 'ctrl'; src: Addr; dst: Addr }
  | { k: 'ext'; src: Addr; dst: Addr; kind: number; ver: number; tlvs: TlvD[]; lenDelta: number }
  | { k: 'ka' }
  | { k: 'v6'; size: number; seed: number }
  | { k: 'noise'; bytes: Uint8Array };

const lenDeltaArb = fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: -30, max: 30 }) }, { weight: 1, arbitrary: fc.constantFrom(-100000, 100000) });

const pieceArb: fc.Arbitrary<PieceD> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('data' as const), src: addrArb, dst: addrArb, size: fc.integer({ min: 20, max: 400 }), seed: fc.nat(), ihl: fc.oneof({ weight: 5, arbitrary: fc.constant(5) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('ctrl' as const), src: addrArb, dst: addrArb }) },
  // Extension messages, mostly requests (destination 0, kind 1, version 1).
  { weight: 5, arbitrary: fc.record({ k: fc.constant('ext' as const), src: addrArb, dst: fc.oneof({ weight: 4, arbitrary: fc.constant('any' as Addr) }, { weight: 1, arbitrary: addrArb }), kind: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat({ max: 255 }) }), ver: fc.oneof({ weight: 4, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.nat({ max: 3 }) }), tlvs: fc.array(tlvArb, { maxLength: 6 }), lenDelta: lenDeltaArb }) },
  { weight: 1, arbitrary: fc.constant({ k: 'ka' as const }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('v6' as const), size: fc.nat({ max: 200 }), seed: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('noise' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
);

interface ModD {
  p: PieceD;
  cut: number | null; // truncate to cut % length
  muts: Array<[number, number]>; // positions (mod length) and bytes
}

const modArb: fc.Arbitrary<ModD> = fc.record({
  p: pieceArb,
  cut: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat() }),
  muts: fc.oneof({ weight: 4, arbitrary: fc.constant([] as Array<[number, number]>) }, { weight: 2, arbitrary: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }) }),
});

function tlvBytes(d: TlvD): Uint8Array {
  const enc = (t: number, v: Uint8Array) => Uint8Array.from([t, v.length & 255, ...v]);
  if ('cred' in d) {
    const [id, secret] =
      d.cred === 'good' ? [FUZZER.id, FUZZER.secret]
      : d.cred === 'fixed' ? [FUZZ_FIXED.id, FUZZ_FIXED.secret]
      : d.cred === 'wrong' ? [FUZZER.id, 'wrong-' + FUZZER.secret]
      : d.cred === 'bystander-wrong' ? [BYSTANDER_A.id, 'guess']
      : ['nobody', 'nothing'];
    const [[t1, v1], [t2, v2]] = credentials(id, secret);
    return Uint8Array.from([...enc(t1, v1), ...enc(t2, v2)]);
  }
  if ('raw' in d) return Uint8Array.from([d.raw[0], d.raw[1], ...d.raw[2]]);
  return enc(d.t, d.v);
}

function build(m: ModD, c: Ctx): Uint8Array {
  const d = m.p;
  let b: Uint8Array;
  switch (d.k) {
    case 'data': {
      const size = Math.max(d.size, d.ihl * 4);
      b = ipPacket(resolve(d.src, c), resolve(d.dst, c), size, rng(d.seed));
      b[0] = 0x40 | d.ihl;
      break;
    }
    case 'ctrl':
      b = controlMessage(resolve(d.src, c), resolve(d.dst, c));
      break;
    case 'ext': {
      const body = d.tlvs.map(tlvBytes);
      const len = 24 + body.reduce((s, x) => s + x.length, 0);
      b = new Uint8Array(len);
      b.set(controlMessage(resolve(d.src, c), resolve(d.dst, c)));
      b[9] = 253;
      b.set([0x53, 0x56, d.kind, d.ver], 20);
      let o = 24;
      for (const x of body) {
        b.set(x, o);
        o += x.length;
      }
      const total = Math.max(0, Math.min(65535, len + d.lenDelta));
      b[2] = total >> 8;
      b[3] = total & 255;
      break;
    }
    case 'ka':
      b = Uint8Array.from(KEEPALIVE);
      break;
    case 'v6': {
      b = new Uint8Array(40 + d.size);
      const r = rng(d.seed);
      for (let i = 0; i < b.length; i++) b[i] = (r() * 256) | 0;
      b[0] = 0x60 | (b[0] & 15);
      b[4] = d.size >> 8;
      b[5] = d.size & 255;
      break;
    }
    case 'noise':
      b = Uint8Array.from(d.bytes);
      break;
  }
  if (m.cut !== null && b.length > 0) b = b.subarray(0, m.cut % b.length);
  if (b.length) for (const [at, v] of m.muts) b[at % b.length] = v;
  return b;
}

// ---- the fuzzing harness ------------------------------------------------------------------------

/**
 * How a hostile connection starts: nothing; a seed or extension request, with good
 * credentials (its own or the fixed-address client's), each answered before the stream
 * goes on; or a request whose credentials are being checked while the stream arrives
 * (wrong, unknown or good).
 */
type Opening = 'none' | 'seed' | 'ext' | 'creds' | 'fixed-creds' | 'wrong-nowait' | 'unknown-nowait' | 'creds-nowait';

interface World {
  h: Harness;
  a: SdkPeer;
  b: SdkPeer;
  tlsOpts: { ca: Buffer; cert?: Buffer; key?: Buffer };
}

async function openRaw(w: World, transport: 'tcp' | 'tls'): Promise<RawClient | null> {
  if (transport === 'tcp') return RawClient.connect(w.h.port);
  const sock = tls.connect({ host: '127.0.0.1', port: w.h.server.tlsPort, ca: w.tlsOpts.ca, cert: w.tlsOpts.cert, key: w.tlsOpts.key, servername: 'localhost' });
  const c = new RawClient(sock);
  let secure = false;
  sock.once('secureConnect', () => (secure = true));
  await waitFor(() => secure || c.closed, 5000, 'TLS handshake');
  return c.closed ? null : c;
}

/** One hostile connection; returns when it is closed again. */
async function hostile(w: World, opening: Opening, transport: 'tcp' | 'tls', pieces: ModD[], chunks: number, chunkSeed: number): Promise<void> {
  const c = await openRaw(w, transport);
  if (!c) return;
  try {
    let me = 0;
    let linger = false;
    if (opening === 'seed') me = await c.requestSeed().catch(() => 0);
    else if (opening.endsWith('-nowait')) {
      const [id, secret] = opening === 'wrong-nowait' ? [FUZZER.id, 'not-' + FUZZER.secret] : opening === 'unknown-nowait' ? ['no-such-id', 'whatever'] : [FUZZER.id, FUZZER.secret];
      c.write(extRequest(0, credentials(id, secret)));
      linger = true;
    } else if (opening !== 'none') {
      const tlvs = opening === 'creds' ? credentials(FUZZER.id, FUZZER.secret) : opening === 'fixed-creds' ? credentials(FUZZ_FIXED.id, FUZZ_FIXED.secret) : [];
      c.write(extRequest(0, tlvs));
      await waitFor(() => c.frames.length > 0 || c.closed, 3000, 'the reply to the opening request');
      if (c.frames.length) me = readU32(c.frames[0], DST);
    }
    const ctx = { me, a: w.a.address, b: w.b.address };
    const stream = Buffer.concat(pieces.map((p) => build(p, ctx)));
    const r = rng(chunkSeed);
    const cuts = Array.from({ length: chunks - 1 }, () => Math.floor(r() * stream.length)).sort((x, y) => x - y);
    let prev = 0;
    for (const cut of [...cuts, stream.length]) {
      if (c.closed) break;
      c.write(stream.subarray(prev, cut));
      prev = cut;
      if (r() < 0.7) await new Promise((res) => setImmediate(res));
    }
    // Sometimes linger, so that answers which take time (credential checks) arrive while the connection is open.
    const x = r();
    if (linger || x < 0.2) await sleep(25);
    else if (x < 0.4) await sleep(2);
  } finally {
    c.destroy();
  }
}

/** The bystanders exchange a packet each way every 20 ms; check() says all arrived. */
function background(w: World) {
  let seq = 0;
  const sent: Array<{ to: SdkPeer; p: Uint8Array }> = [];
  let failures = 0;
  const timer = setInterval(() => {
    seq++;
    const ab = ipPacket(w.a.address, w.b.address, 60 + (seq % 40), rng(seq * 2 + 1));
    const ba = ipPacket(w.b.address, w.a.address, 60 + (seq % 40), rng(seq * 2 + 2));
    if (w.a.client.send(ab)) sent.push({ to: w.b, p: ab });
    else failures++;
    if (w.b.client.send(ba)) sent.push({ to: w.a, p: ba });
    else failures++;
  }, 20);
  return {
    async stop(): Promise<{ sent: number; lost: number; failures: number }> {
      clearInterval(timer);
      const lost = () => sent.filter((s) => !s.to.packets.some((x) => equalBytes(x, s.p))).length;
      await waitFor(() => lost() === 0, 3000, 'the last bystander packets').catch(() => {});
      return { sent: sent.length, lost: lost(), failures };
    },
  };
}

async function fuzz(w: World, runs: number, tlsShare: number, openings: Opening[], seed?: number): Promise<number> {
  const guard = crashGuard();
  const bg = background(w);
  let cases = 0;
  const addrA = w.a.address;
  const addrB = w.b.address;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...openings),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(modArb, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 8 }),
        fc.nat(),
        async (opening, tr, pieces, chunks, chunkSeed) => {
          cases++;
          await hostile(w, opening, tr < tlsShare ? 'tls' : 'tcp', pieces, chunks, chunkSeed);
          await waitFor(() => w.h.sessions === 2, 3000, 'the hostile session to end', () => w.h.server.clients());
          assert.is(w.h.pool.size, 2, 'no address leaked');
          assert.is(w.h.switch.size, 2, 'no routing entry leaked');
          assert.is(guard.errors.length, 0, 'uncaught: ' + String((guard.errors[0] as any)?.stack ?? guard.errors[0]));
          assert.is(w.a.address, addrA);
          assert.is(w.b.address, addrB);
          assert.is(w.a.state.state, 'ready');
          assert.is(w.b.state.state, 'ready');
        },
      ),
      { numRuns: runs, seed, endOnFailure: true },
    );
  } finally {
    guard.dispose();
  }
  const traffic = await bg.stop();
  const m = w.h.metrics;
  if (process.env.FUZZ_VERBOSE) console.log(JSON.stringify({ refusals: m.refusals, disconnects: m.disconnects, drops: m.drops, keepalives: m.keepalives, rx: m.rxPackets, tx: m.txPackets }));
  assert.is(guard.errors.length, 0);
  assert.ok(traffic.sent > 0, 'the bystanders exchanged packets');
  assert.is(traffic.lost, 0, `bystander packets lost during the fuzzing: ${traffic.lost} of ${traffic.sent}`);
  assert.is(traffic.failures, 0, 'a bystander could not send');
  return cases;
}

async function closeAndCheck(w: World): Promise<void> {
  w.a.close();
  w.b.close();
  await waitFor(() => w.h.sessions === 0, 3000, 'no session left', () => w.h.server.clients());
  assert.is(w.h.pool.size, 0);
  assert.is(w.h.switch.size, 0);
  assert.is(w.h.pool.free, w.h.pool.capacity - (w.h.auth ? 1 : 0));
}

let total = 0;
const t0 = Date.now();

test('fuzzing a server without auth (plain and TLS listeners): 1,600 hostile connections', async () => {
  await withServer({ subnet: SUBNET, maxFrame: 4000, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 }, async (h) => {
    const a = tlsSdk(h, { ca: pki.caPem }, { name: 'a' });
    const b = h.sdk({ name: 'b' });
    await a.ready();
    await b.ready();
    const w = { h, a, b, tlsOpts: { ca: pki.caPem } };
    total += await fuzz(w, 1600, 0.1, ['none', 'seed', 'ext', 'ext', 'creds', 'creds-nowait']);
    const m = h.metrics;
    // The generated input reached the paths it is meant to (else the property proves little).
    for (const [what, n] of Object.entries({ malformed: m.disconnects.malformed_frame, tooLong: m.disconnects.frame_too_long, spoofed: m.drops.spoofed_source, unassigned: m.drops.unassigned, ipv6: m.drops.not_ipv4, keepalives: m.keepalives, delivered: m.txPackets }))
      assert.ok((n ?? 0) > 0, `no ${what} case was generated`);
    await closeAndCheck(w);
  });
});

test('fuzzing a server with auth and mutual TLS: 600 hostile connections', async () => {
  const path = join(tmp, 'auth.json');
  await writeAuth(path, [BYSTANDER_A, BYSTANDER_B, FUZZER, FUZZ_FIXED]);
  // One certificate for every fuzz connection, whatever id it claims: certificates that only
  // admit (--cert-id off). Certificates naming ids: auth-cert.test.ts.
  await withServer({ subnet: SUBNET, maxFrame: 4000, auth: path, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca, tlsPort: 0, certId: 'off' }, async (h) => {
    const client = { ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem };
    const a = tlsSdk(h, client, { credentials: credsOf(BYSTANDER_A) });
    const b = h.sdk({ credentials: credsOf(BYSTANDER_B) });
    await a.ready();
    await b.ready();
    const w = { h, a, b, tlsOpts: client };
    total += await fuzz(w, 600, 0.2, ['none', 'seed', 'ext', 'creds', 'creds', 'fixed-creds', 'wrong-nowait', 'unknown-nowait', 'creds-nowait']);
    const m = h.metrics;
    for (const [what, n] of Object.entries({ authRequired: m.refusals.auth_required, authFailed: m.refusals.auth_failed, malformed: m.disconnects.malformed_frame, spoofed: m.drops.spoofed_source }))
      assert.ok((n ?? 0) > 0, `no ${what} case was generated`);
    // A check submitted by a fuzz connection that has closed still waits its turn (at most the
    // gate's maxWaitMs, 5 s) and runs: none may be left behind once that time has passed.
    await waitFor(() => h.auth!.pending === 0, 8000, 'the credential checks of closed fuzz connections to end');
    await closeAndCheck(w);
  });
});

test('the fuzzing ran at least 2,000 cases', () => {
  assert.ok(total >= 2000, `${total} cases`);
  console.log(`  ${total} fuzz cases in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

// ---- spoofing over TLS ----------------------------------------------------------------------------

test('a spoofed source from a TLS client never reaches another client', async () => {
  await withServer({ subnet: SUBNET, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 }, async (h) => {
    const victim = h.sdk();
    const other = tlsSdk(h, { ca: pki.caPem });
    const evil = tlsSdk(h, { ca: pki.caPem });
    await victim.ready();
    await other.ready();
    await evil.ready();
    const spoofs = [
      ipPacket(other.address, victim.address, 60),
      ipPacket(victim.address, other.address, 60),
      ipPacket(ip('10.1.0.250'), victim.address, 60),
      ipPacket(0, victim.address, 60),
      ipPacket(ip('10.1.0.1'), victim.address, 60),
    ];
    for (const s of spoofs) assert.ok(evil.client.send(s));
    const honest = ipPacket(evil.address, victim.address, 44);
    evil.client.send(honest);
    await waitFor(() => victim.packets.length >= 1, 3000, 'the honest packet');
    await sleep(50);
    assert.is(victim.packets.length, 1);
    assert.ok(equalBytes(victim.packets[0], honest));
    assert.is(other.packets.length, 0);
    assert.is(h.metrics.drops.spoofed_source, 5);
  });
});

// ---- slow reader over TLS ---------------------------------------------------------------------------

test('a slow reader (TLS client that never reads) cannot grow the server past its send queue; the flood is dropped as queue_full', async () => {
  const sendQueue = 128 * 1024;
  await withServer({ subnet: SUBNET, sendQueue, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 }, async (h) => {
    const slowAddr = ip('10.1.0.66');
    const r = await rawTls(h.server.tlsPort, { ca: pki.caPem, paused: true });
    if (!r.sock) throw new Error('TLS connect failed: ' + r.error?.message);
    h.track(r.sock);
    r.sock.write(extRequest(slowAddr, []));
    await waitFor(() => h.sessionAt(slowAddr) !== undefined, 3000, 'the slow client to get its address');
    const session = h.sessionAt(slowAddr)!;
    const parent = (session.socket as any)._parent; // the TCP socket under the TLS one
    const flooder = await h.raw();
    const fAddr = await flooder.requestSeed();
    const p = ipPacket(fAddr, slowAddr, 1400, rng(1));
    const burst = Buffer.concat(Array.from({ length: 100 }, () => p));
    let max = 0;
    let maxParent = 0;
    const sample = () => {
      max = Math.max(max, session.socket.writableLength);
      maxParent = Math.max(maxParent, parent?._handle?.writeQueueSize ?? 0);
    };
    const sampler = setInterval(sample, 1);
    const end = Date.now() + 20_000;
    try {
      while (max < sendQueue / 2 || h.metrics.drops.queue_full < 2000) {
        if (Date.now() > end) throw new Error(`the flood did not fill the queue: ${JSON.stringify(h.metrics.drops)}, max writableLength ${max}`);
        await flooder.writeAll(burst);
        sample();
        await new Promise((res) => setImmediate(res));
      }
      await sleep(20);
      sample();
    } finally {
      clearInterval(sampler);
    }
    // The cap leaves out at most TURN_ALLOWANCE caps written in one turn while the kernel took everything.
    const bound = (1 + TURN_ALLOWANCE) * sendQueue;
    assert.ok(max <= bound, `writableLength ${max} went past the send queue cap ${sendQueue} and one turn's allowance`);
    assert.ok(maxParent <= bound, `encrypted bytes queued under the TLS socket: ${maxParent}`);
    assert.ok(h.metrics.drops.queue_full >= 2000);
    assert.is(session.drops, h.metrics.drops.queue_full);
    assert.not.ok(session.closed, 'slow is not a reason to disconnect');
    assert.not.ok(flooder.closed);
    // Everyone else still has service.
    const other = tlsSdk(h, { ca: pki.caPem });
    await other.ready();
    const back = ipPacket(other.address, fAddr, 80);
    other.client.send(back);
    await waitFor(() => flooder.frames.some((f) => equalBytes(f, back)), 3000, 'delivery to the flooder');
  });
});

// ---- what hostile clients put in the log ------------------------------------------------------------

test('names and ids sent by clients cannot put control characters (terminal escapes) into the text log', async () => {
  const out: string[] = [];
  const logger = createLogger({ format: 'text', level: 'debug', write: (l) => out.push(l) });
  const path = join(tmp, 'log-auth.json');
  await writeAuth(path, [FUZZER]);
  const evil = 'x\x1b[2J\x1b]0;owned\x07\x08\x08\x08ok\x00\x7f';
  await withServer({ subnet: SUBNET, logger }, async (h) => {
    const c = await h.raw();
    c.write(extRequest(0, [[T_CLIENT, Uint8Array.from(evil, (ch) => ch.charCodeAt(0))]]));
    await waitFor(() => c.frames.length > 0, 3000, 'the reply');
  });
  await withServer({ subnet: SUBNET, logger, auth: path }, async (h) => {
    const c = await h.raw();
    c.write(extRequest(0, credentials(evil, 'guess')));
    await c.waitClosed();
  });
  const assign = out.find((l) => / assign /.test(l));
  const refuse = out.find((l) => / refuse /.test(l));
  assert.ok(assign && refuse, out.join('\n'));
  const bad = out.filter((l) => /[\x00-\x08\x0b-\x1f\x7f]/.test(l));
  assert.equal(bad.map((l) => JSON.stringify(l)), [], 'log lines with raw control characters from a client');
});

test.run();
