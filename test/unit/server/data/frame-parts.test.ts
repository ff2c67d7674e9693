// A frame that spans reads of its client's socket is forwarded in two parts (protocol/framer.ts
// FrameParts): to another client's socket as two writes of views in the chunk's cork, to the
// server's tun in one writev of its parts (a KIND_SUPER frame fixed up in its first part),
// and joined wherever more than the header is read. Each frame is cut at every byte of its
// header and of its payload into 2 chunks, and at pairs of bytes into 3; whatever the cut,
// what the peer or the tun gets is what the frame whole gives. Sessions run on fake sockets.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Socket } from 'node:net';
import { ANY, DST, Framer, KIND_REQUEST, SUPER_HEADER, T_MTU, extMessage, parseIPv4, readU32, u16 } from '../../../../protocol/index.js';
import { resolveConfig } from '../../../../server/src/config/config.js';
import { Admission } from '../../../../server/src/control/admission.js';
import { MemoryLeaseStore } from '../../../../server/src/control/memory-lease-store.js';
import { Reassembly } from '../../../../server/src/data/session.js';
import { HEAD_PART } from '../../../../server/src/data/session-framer.js';
import { Switch } from '../../../../server/src/data/switch.js';
import { type ServerTun, TunPort } from '../../../../server/src/data/tun-port.js';
import { Metrics } from '../../../../server/src/metrics/metrics.js';
import { writeSuperHeader } from '../../../../common/offload/super.js';
import { TCP_ACK } from '../../../../common/offload/vnet.js';
import { refPacket } from '../../../support/offload-reference.js';
import { FakeSocket } from '../../../support/fake-socket.js';

const ip = (s: string) => parseIPv4(s);
const BEYOND = ip('192.0.2.9');

/** A client's socket: what the server writes to it. */
class ClientSocket extends FakeSocket {
  /** The bytes written since the last call. */
  bytes(): Buffer {
    this.views.length = 0;
    return Buffer.concat(this.out.splice(0));
  }
}

/** A tun device that records each packet written (its virtio-net header, if any, and its bytes); with or without offloads. */
class FakeTun implements ServerTun {
  readonly name = 'fake0';
  readonly stats = { txRejected: 0 };
  /** Each packet written: its virtio-net header (none: empty) and its bytes, as one buffer. */
  readonly written: Buffer[] = [];
  parts = 0;
  constructor(readonly offload: boolean) {}
  write(b: Uint8Array, o: number, n: number): boolean {
    return this.take(null, Buffer.from(b.subarray(o, o + n)));
  }
  writeVnet(h: Uint8Array, b: Uint8Array, o: number, n: number): boolean {
    return this.take(h, Buffer.from(b.subarray(o, o + n)));
  }
  writeParts(h: Uint8Array | null, a: Uint8Array, ao: number, an: number, b: Uint8Array, bo: number, bn: number): boolean {
    this.parts++;
    return this.take(h, Buffer.concat([a.subarray(ao, ao + an), b.subarray(bo, bo + bn)]));
  }
  private take(h: Uint8Array | null, bytes: Buffer): boolean {
    this.written.push(Buffer.concat([h ?? new Uint8Array(0), bytes]));
    return true;
  }
  close(): void {}
}

/** A server's data side with two clients (MTU 65000) and a tun (`offload`: with offloads). */
function lab(offload: boolean) {
  const cfg = resolveConfig({ subnet: '10.6.0.0/24', tun: false, mtu: 65000 });
  const metrics = new Metrics();
  const sw = new Switch(metrics, cfg.gateway);
  const tun = new FakeTun(offload);
  sw.setFallback(new TunPort(tun, sw, metrics, (e) => assert.unreachable(e.message)));
  const admission = new Admission({
    cfg,
    leases: new MemoryLeaseStore(ip('10.6.0.0'), 24, [ip('10.6.0.1')]),
    env: { sw, metrics, sendQueue: 1 << 24, maxFrame: cfg.maxFrame, reassembly: new Reassembly(cfg.frameMemory) },
    metrics,
    authenticator: () => null,
    linger: () => {},
    event: () => {},
    ended: () => {},
  });
  let id = 1;
  const client = () => {
    const sock = new ClientSocket();
    const c = admission.connect(sock as unknown as Socket, id++, '192.0.2.1:4000', 'tcp');
    sock.emit('data', Buffer.from(extMessage(ANY, ANY, KIND_REQUEST, [[T_MTU, u16(65000)]])));
    const address = readU32(sock.out[0], DST);
    sock.bytes(); // the reply
    return { sock, session: c.session, address };
  };
  return { metrics, tun, a: client(), b: client() };
}

/** An IPv4 packet of `len` bytes from `src` to `dst` (protocol 17), its bytes counting from `seed`. */
function packet(src: number, dst: number, len: number, seed: number): Uint8Array {
  const p = new Uint8Array(len).map((_, i) => (seed + i * 13) & 255);
  p.set([0x45, 0, len >> 8, len & 255, 0, 0, 0, 0, 64, 17, 0, 0]);
  new DataView(p.buffer).setUint32(12, src);
  new DataView(p.buffer).setUint32(16, dst);
  return p;
}

/** A KIND_SUPER frame from `src` to `dst`: a TCP super-packet of `segments` segments of 1,000 bytes, TCP options 12 bytes. */
function superFrame(src: number, dst: number, segments: number): Uint8Array {
  const flow = { src, dst, sport: 40000, dport: 80, tos: 0, ttl: 64, df: true, options: new Uint8Array(12).fill(1), ack: 1, window: 500 };
  const payload = new Uint8Array(segments * 1000).map((_, i) => i * 31);
  const pkt = refPacket({ flow, id: 7, seq: 1000, flags: TCP_ACK, payload });
  const f = new Uint8Array(SUPER_HEADER + pkt.length);
  f.set(pkt, SUPER_HEADER);
  writeSuperHeader(f, 0, pkt.length, 1000);
  return f;
}

type Lab = ReturnType<typeof lab>;

/** What the peer (its stream) and the tun (its packets) got from `frame` sent by client a in chunks cut at `cuts` (fresh buffers each, as Node's reads). */
function send(l: Lab, frame: Uint8Array, cuts: number[]): { peer: Buffer; tun: Buffer[] } {
  let at = 0;
  for (const c of [...cuts, frame.length]) {
    l.a.sock.emit('data', Buffer.from(frame.subarray(at, c)));
    at = c;
  }
  return { peer: l.b.sock.bytes(), tun: l.tun.written.splice(0) };
}

/** The frames of a peer's stream, as a client's framer reads them. */
function framesOf(stream: Buffer): string[] {
  const f = new Framer();
  f.push(stream);
  const frames: string[] = [];
  for (let x; (x = f.next()) !== null; ) frames.push(Buffer.from(x).toString('hex'));
  assert.is(f.pending, 0, 'the stream written ends with a whole frame');
  return frames;
}

const sameBytes = (a: Buffer[], b: Buffer[]) => a.length === b.length && a.every((x, i) => x.equals(b[i]));

/**
 * Cuts: every byte into 2 chunks; into 3, every pair for a frame of up to `pairsUpTo` bytes,
 * else a first cut at every byte of the first HEAD_PART + 8 (and every 97th after) and a
 * second 1-8 bytes after it (a middle chunk of a few bytes), every 61st, and the last.
 */
function* cutsOf(len: number, pairsUpTo: number): Generator<number[]> {
  for (let i = 1; i < len; i++) yield [i];
  for (let i = 1; i < len - 1; i++) {
    if (len <= pairsUpTo) {
      for (let j = i + 1; j < len; j++) yield [i, j];
      continue;
    }
    if (i > HEAD_PART + 8 && i % 97 !== 0) continue;
    for (let j = i + 1; j < len; j++) if (j <= i + 8 || j % 61 === 0 || j === len - 1) yield [i, j];
  }
}

/** Sends `frame` (a copy each time: the tun's path changes a super-packet's checksums in place) whole, then cut every way; all must give the same. */
function sameEveryCut(l: Lab, frame: Uint8Array, pairsUpTo: number, what: string): { peer: string[]; tun: Buffer[] } {
  const make = () => frame.slice();
  const whole = send(l, make(), []);
  assert.ok(whole.peer.length + whole.tun.length > 0, `${what}: nothing arrived`);
  const len = make().length;
  for (const cuts of cutsOf(len, pairsUpTo)) {
    const got = send(l, make(), cuts);
    if (!got.peer.equals(whole.peer) || !sameBytes(got.tun, whole.tun)) assert.unreachable(`${what}: cut at ${cuts} gives other bytes than the frame whole`);
  }
  return { peer: framesOf(whole.peer), tun: whole.tun };
}

test('to another client: an IPv4 packet cut anywhere arrives as it was sent, its parts written as views without a copy', () => {
  const l = lab(true);
  for (const len of [100, 300, 1500]) {
    const r = sameEveryCut(l, packet(l.a.address, l.b.address, len, len), 100, `${len} bytes to a peer`);
    assert.equal(r.peer, [Buffer.from(packet(l.a.address, l.b.address, len, len)).toString('hex')]);
  }
  // A 64 KiB frame cut in its payload: the peer's socket gets the chunk's own bytes, not a copy.
  const big = packet(l.a.address, l.b.address, 65000, 3);
  const c1 = Buffer.from(big.subarray(0, 40000));
  const c2 = Buffer.from(big.subarray(40000));
  l.a.sock.emit('data', c1);
  l.a.sock.emit('data', c2);
  const v = l.b.sock.views;
  assert.is(v.length, 2);
  assert.is(v[0].buffer, c1.buffer, 'the first part: a view of the first chunk');
  assert.is(v[1].buffer, c2.buffer, 'the rest: a view of the second chunk');
  assert.equal(framesOf(l.b.sock.bytes()), [Buffer.from(big).toString('hex')]);
  assert.is(l.metrics.drops.queue_full, 0);
});

test('to the tun: an IPv4 packet cut anywhere is written as it was sent, in one write of its parts (device without offloads) or through the coalescer (with)', () => {
  for (const offload of [false, true]) {
    const l = lab(offload);
    for (const len of [100, 300, 1500]) {
      const r = sameEveryCut(l, packet(l.a.address, BEYOND, len, len), 100, `${len} bytes to a tun, offload ${offload}`);
      assert.is(r.tun.length, 1);
      assert.ok(r.tun[0].subarray(r.tun[0].length - len).equals(packet(l.a.address, BEYOND, len, len)));
    }
    assert.is(l.tun.parts > 0, !offload, offload ? 'the coalescer takes the packet joined' : 'written in parts');
  }
});

test('a KIND_SUPER frame cut anywhere: to the tun in one write of its parts behind its virtio-net header, to a peer that takes them as sent, split for one that does not', () => {
  const l = lab(true);
  l.a.session.superPackets = true;
  const toTun = sameEveryCut(l, superFrame(l.a.address, BEYOND, 3), 0, 'a super-packet to the tun');
  assert.is(toTun.tun.length, 1);
  assert.ok(l.tun.parts > 0, 'written in parts');
  assert.is(l.metrics.drops.tun_rejected, 0);
  l.b.session.superPackets = true;
  const toPeer = sameEveryCut(l, superFrame(l.a.address, l.b.address, 3), 0, 'a super-packet to a peer that takes them');
  assert.equal(toPeer.peer, [Buffer.from(superFrame(l.a.address, l.b.address, 3)).toString('hex')]);
  l.b.session.superPackets = false;
  const split = sameEveryCut(l, superFrame(l.a.address, l.b.address, 3), 0, 'a super-packet to a peer that does not');
  assert.is(split.peer.length, 3, 'its three segments');
});

test('frames that are not data from the client (a keepalive, a spoofed source, too big for the peer) are joined and handled as whole ones', () => {
  const l = lab(true);
  // Spoofed: dropped and counted, whatever the cut.
  const spoofed = packet(ip('10.6.0.99'), l.b.address, 400, 1);
  for (const cut of [1, 20, 200, 399]) send(l, spoofed, [cut]);
  assert.is(l.metrics.drops.spoofed_source, 4);
  // Too big for a peer with a small MTU, without DF: fragmented from the joined frame.
  (l.b.session as unknown as { mtu_: number }).mtu_ = 576;
  const whole = send(l, packet(l.a.address, l.b.address, 3000, 2), []);
  assert.ok(framesOf(whole.peer).length > 1);
  for (const cut of [5, 150, 1600, 2999]) assert.ok(send(l, packet(l.a.address, l.b.address, 3000, 2), [cut]).peer.equals(whole.peer));
});

test.run();
