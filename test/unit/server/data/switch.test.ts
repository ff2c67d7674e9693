// The switch alone, with fake ports: where each packet goes, how frames are batched into runs
// and flushed, what happens to a packet too big for its port, and what is counted.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DST, SRC, parseIPv4, readU32, writeU32 } from '../../../../protocol/index.js';
import { Metrics } from '../../../../server/src/metrics/metrics.js';
import type { Port } from '../../../../server/src/data/port.js';
import { Switch } from '../../../../server/src/data/switch.js';
import { checksum, datagramEnd } from '../../../../server/src/data/too-big.js';

const ip = (s: string) => {
  const n = parseIPv4(s);
  if (n < 0) throw new Error('bad address ' + s);
  return n;
};
const GATEWAY = ip('10.0.0.1');

type Call = { op: 'write' | 'deliver' | 'flush'; port: string; bytes?: number[]; packets?: number; view?: Uint8Array };

/** A port that records every call, in one log shared by all ports of a test. */
class FakePort implements Port {
  accepted = true;
  constructor(
    readonly name: string,
    readonly log: Call[],
    readonly mtu = 1500,
    readonly coalesce = true,
    /** The switch, when the port corks on delivery as a session does. */
    private readonly sw: Switch | null = null,
  ) {}
  private corked = false;
  write(buf: Uint8Array, off: number, len: number): boolean {
    this.log.push({ op: 'write', port: this.name, bytes: Array.from(buf.subarray(off, off + len)) });
    return this.accepted;
  }
  deliver(data: Uint8Array, packets: number): boolean {
    if (this.sw && !this.corked) {
      this.corked = true;
      this.sw.corked(this);
    }
    this.log.push({ op: 'deliver', port: this.name, bytes: Array.from(data), packets, view: data });
    return this.accepted;
  }
  flush(): void {
    this.corked = false;
    this.log.push({ op: 'flush', port: this.name });
  }
}

/** An IPv4 packet: `len` bytes, the given addresses, DF set unless `df` is false, payload a pattern. */
function packet(src: number, dst: number, len: number, opts: { df?: boolean; seed?: number } = {}): Uint8Array {
  const p = new Uint8Array(len);
  for (let i = 20; i < len; i++) p[i] = (i * 7 + (opts.seed ?? 0)) & 255;
  p[0] = 0x45;
  p[2] = len >> 8;
  p[3] = len & 255;
  p[6] = opts.df === false ? 0 : 0x40;
  p[8] = 64;
  p[9] = 17;
  writeU32(p, SRC, src);
  writeU32(p, DST, dst);
  const c = checksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 255;
  return p;
}

/** Packets back to back in one buffer, as frames lie in a received chunk; with their offsets. */
function chunk(...packets: Uint8Array[]): { buf: Uint8Array; at: number[] } {
  const buf = new Uint8Array(packets.reduce((n, p) => n + p.length, 0));
  const at: number[] = [];
  let o = 0;
  for (const p of packets) {
    at.push(o);
    buf.set(p, o);
    o += p.length;
  }
  return { buf, at };
}

/** What every entry does: read the destination, hand the packet to the switch. */
function route(sw: Switch, from: Port, buf: Uint8Array, off: number, len: number): void {
  sw.route(from, buf, off, len, readU32(buf, off + DST));
}

function setup() {
  const m = new Metrics();
  const sw = new Switch(m, GATEWAY);
  const log: Call[] = [];
  return { m, sw, log };
}

const A = ip('10.0.0.2');
const B = ip('10.0.0.3');
const C = ip('10.0.0.4');
const OUTSIDE = ip('8.8.8.8');

// ---- where packets go ------------------------------------------------------------------------

test('a packet goes to the port bound to its destination, byte for byte', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 1500, false);
  const b = new FakePort('b', log, 1500, false);
  assert.ok(sw.bind(A, a));
  assert.ok(sw.bind(B, b));
  const p = packet(A, B, 60);
  route(sw, a, p, 0, p.length);
  sw.flush();
  assert.equal(log, [{ op: 'write', port: 'b', bytes: Array.from(p) }]);
  assert.is(m.drops.no_route, 0);
});

test('no port owns the destination: to the fallback (the tun); without one, dropped as no_route', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 1500, true);
  const tun = new FakePort('tun', log, 65535, false);
  sw.bind(A, a);
  const p = packet(A, OUTSIDE, 40);
  route(sw, a, p, 0, p.length);
  assert.is(m.drops.no_route, 1, 'no fallback yet');
  assert.equal(log, []);
  sw.setFallback(tun);
  route(sw, a, p, 0, p.length);
  assert.equal(log, [{ op: 'write', port: 'tun', bytes: Array.from(p) }]);
  sw.setFallback(null);
  route(sw, a, p, 0, p.length);
  assert.is(m.drops.no_route, 2);
  assert.is(log.length, 1);
});

test('a packet from the fallback that no port owns is dropped (no_route), never sent back to it', () => {
  const { sw, log, m } = setup();
  const tun = new FakePort('tun', log, 65535, false);
  sw.setFallback(tun);
  const p = packet(OUTSIDE, ip('10.0.0.200'), 40);
  route(sw, tun, p, 0, p.length);
  sw.flush();
  assert.equal(log, []);
  assert.is(m.drops.no_route, 1);
});

test('bind refuses an address another port holds; unbind only frees it for its holder; size counts bound addresses', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log);
  const b = new FakePort('b', log);
  assert.ok(sw.bind(A, a));
  assert.ok(sw.bind(A, a), 'binding again to the same port is fine');
  assert.not.ok(sw.bind(A, b));
  assert.is(sw.lookup(A), a);
  sw.unbind(A, b);
  assert.is(sw.lookup(A), a, 'b cannot unbind what a holds');
  assert.is(sw.size, 1);
  sw.unbind(A, a);
  assert.is(sw.lookup(A), undefined);
  assert.is(sw.size, 0);
});

test('a watcher hears of the addresses held when it starts, then of each bound or released, once each', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log);
  const b = new FakePort('b', log);
  const six = (last: number) => Uint8Array.from([0xfd, 0, 0, 5, 0, 7, 0, 0, 0, 0, 0, 0, 10, 0, 0, last]);
  sw.bind(A, a);
  sw.bind6(six(2), a);
  const heard: string[] = [];
  sw.watch((address, held) => heard.push(`${typeof address === 'number' ? address : Array.from(address).join('.')} ${held}`));
  assert.equal(heard, [`${A} true`, `${Array.from(six(2)).join('.')} true`], 'what is held already');
  heard.length = 0;
  sw.bind(A, a); // again, by its holder: nothing new
  sw.bind(A, b); // refused
  sw.unbind(A, b); // not b's
  sw.bind(B, b);
  sw.unbind(A, a);
  sw.bind6(six(3), b);
  sw.unbind6(six(3), a); // not a's
  sw.unbind6(six(3), b);
  assert.equal(heard, [`${B} true`, `${A} false`, `${Array.from(six(3)).join('.')} true`, `${Array.from(six(3)).join('.')} false`]);
});

// ---- batching --------------------------------------------------------------------------------

test('adjacent frames of one buffer for one coalescing port leave as one view, handed over at flush', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log, 1500, true);
  const b = new FakePort('b', log, 1500, true, sw);
  sw.bind(A, a);
  sw.bind(B, b);
  const ps = [packet(A, B, 40, { seed: 1 }), packet(A, B, 41, { seed: 2 }), packet(A, B, 42, { seed: 3 })];
  const { buf, at } = chunk(...ps);
  for (let i = 0; i < ps.length; i++) route(sw, a, buf, at[i], ps[i].length);
  assert.equal(log, [], 'nothing leaves before the end of the chunk');
  sw.flush();
  assert.is(log.length, 2);
  assert.is(log[0].op, 'deliver');
  assert.is(log[0].packets, 3);
  assert.equal(log[0].bytes, Array.from(buf));
  assert.is(log[0].view, buf, 'a run covering the whole buffer is the buffer itself, no view made');
  assert.equal(log[1], { op: 'flush', port: 'b' }, 'the port that corked is flushed once');
  sw.flush();
  assert.is(log.length, 2, 'a second flush has nothing to do');
});

test('runs end where the destination changes, at a gap and at a buffer boundary; order per port is kept', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log, 1500, true);
  const b = new FakePort('b', log, 1500, true, sw);
  const c = new FakePort('c', log, 1500, true, sw);
  sw.bind(A, a);
  sw.bind(B, b);
  sw.bind(C, c);
  const ps = [packet(A, B, 40, { seed: 1 }), packet(A, B, 40, { seed: 2 }), packet(A, C, 40, { seed: 3 }), packet(A, B, 40, { seed: 4 }), packet(A, B, 40, { seed: 5 })];
  const { buf, at } = chunk(...ps);
  route(sw, a, buf, at[0], 40);
  route(sw, a, buf, at[1], 40);
  route(sw, a, buf, at[2], 40);
  route(sw, a, buf, at[3], 40);
  // Frame 4 skipped: frame 5 is not adjacent to frame 3's run.
  const other = Uint8Array.from(ps[4]);
  route(sw, a, other, 0, 40); // another buffer
  sw.flush();
  const deliveries = log.filter((l) => l.op === 'deliver').map((l) => [l.port, l.packets, l.bytes!.length]);
  assert.equal(deliveries, [
    ['b', 2, 80],
    ['c', 1, 40],
    ['b', 1, 40],
    ['b', 1, 40],
  ]);
  assert.equal(
    log.filter((l) => l.op === 'flush').map((l) => l.port),
    ['b', 'c'],
    'each corked port flushed once, in the order it corked',
  );
});

test('a packet alone in its buffer (from the tun) leaves at once as the buffer itself, after what is pending for its port', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log, 1500, true);
  const b = new FakePort('b', log, 1500, true, sw);
  const c = new FakePort('c', log, 1500, true, sw);
  sw.bind(A, a);
  sw.bind(B, b);
  sw.bind(C, c);
  const { buf, at } = chunk(packet(A, B, 40, { seed: 1 }), packet(A, B, 40, { seed: 2 }));
  route(sw, a, buf, at[0], 40);
  route(sw, a, buf, at[1], 40);
  const toC = packet(OUTSIDE, C, 60, { seed: 3 });
  route(sw, a, toC, 0, toC.length);
  assert.equal(log.map((l) => [l.op, l.port, l.packets]), [['deliver', 'c', 1]], "c's packet leaves at once; b's run stays open");
  assert.is(log[0].view, toC, 'no view made');
  const toB = packet(OUTSIDE, B, 50, { seed: 4 });
  route(sw, a, toB, 0, toB.length);
  assert.equal(
    log.map((l) => [l.op, l.port, l.packets]),
    [
      ['deliver', 'c', 1],
      ['deliver', 'b', 2],
      ['deliver', 'b', 1],
    ],
    "b's run first, then the packet",
  );
  sw.flush();
  assert.equal(
    log.filter((l) => l.op === 'flush').map((l) => l.port),
    ['c', 'b'],
  );
});

test('a non-coalescing port (a seed client, a tun) gets one write per packet, never a merged run', () => {
  const { sw, log } = setup();
  const a = new FakePort('a', log, 1500, true);
  const seed = new FakePort('seed', log, 1500, false);
  sw.bind(A, a);
  sw.bind(B, seed);
  const ps = [packet(A, B, 40, { seed: 1 }), packet(A, B, 50, { seed: 2 }), packet(A, B, 60, { seed: 3 })];
  const { buf, at } = chunk(...ps);
  for (let i = 0; i < ps.length; i++) route(sw, a, buf, at[i], ps[i].length);
  assert.equal(
    log.map((l) => [l.op, l.bytes]),
    ps.map((p) => ['write', Array.from(p)]),
    'written at once, one packet each',
  );
});

// ---- too big ---------------------------------------------------------------------------------

test('too big with Don\'t Fragment: dropped (too_big), and the sender gets ICMP "fragmentation needed" with the MTU, from the gateway', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 65000, true);
  const small = new FakePort('small', log, 1500, true);
  sw.bind(A, a);
  sw.bind(B, small);
  const p = packet(A, B, 3000);
  route(sw, a, p, 0, p.length);
  sw.flush();
  assert.is(m.drops.too_big, 1);
  assert.equal(log.filter((l) => l.port === 'small'), [], 'nothing reaches the small port');
  assert.is(log.length, 1);
  assert.is(log[0].op, 'write');
  assert.is(log[0].port, 'a');
  const icmp = Uint8Array.from(log[0].bytes!);
  assert.is(icmp[9], 1, 'ICMP');
  assert.is(readU32(icmp, SRC), GATEWAY);
  assert.is(readU32(icmp, DST), A);
  assert.is(icmp[20], 3);
  assert.is(icmp[21], 4);
  assert.is((icmp[26] << 8) | icmp[27], 1500, 'the next-hop MTU');
  assert.is(checksum(icmp, 0, 20), 0, 'header checksum');
  assert.is(checksum(icmp, 20, icmp.length - 20), 0, 'ICMP checksum');
  assert.equal(Array.from(icmp.subarray(28, 56)), Array.from(p.subarray(0, 28)), 'quotes the header and 8 bytes');
});

test('too big without DF: fragmented to the MTU; a coalescing port gets them in one delivery, after what came before', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 65000, true);
  const small = new FakePort('small', log, 576, true, sw);
  sw.bind(A, a);
  sw.bind(B, small);
  const first = packet(A, B, 100, { df: false, seed: 9 });
  const big = packet(A, B, 1500, { df: false });
  const { buf, at } = chunk(first, big);
  route(sw, a, buf, at[0], first.length);
  route(sw, a, buf, at[1], big.length);
  sw.flush();
  const d = log.filter((l) => l.op === 'deliver');
  assert.is(d.length, 2);
  assert.equal(d[0].bytes, Array.from(first), 'the earlier packet first');
  const frags = Uint8Array.from(d[1].bytes!);
  assert.is(d[1].packets, 3);
  assert.is(m.fragmented, 3);
  assert.is(m.drops.too_big, 0);
  let payload = 0;
  for (let at = 0, i = 0; i < 3; i++) {
    const len = (frags[at + 2] << 8) | frags[at + 3];
    assert.ok(len <= 576, `fragment ${i} is ${len} bytes`);
    assert.is(checksum(frags, at, 20), 0);
    payload += len - 20;
    at += len;
  }
  assert.is(payload, 1480);
});

test('too big for a non-coalescing port: one write per fragment; for the fallback as well', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 65000, true);
  const seed = new FakePort('seed', log, 1500, false);
  const tun = new FakePort('tun', log, 1000, false);
  sw.bind(A, a);
  sw.bind(B, seed);
  sw.setFallback(tun);
  const p = packet(A, B, 4000, { df: false });
  route(sw, a, p, 0, p.length);
  const q = packet(A, OUTSIDE, 2500, { df: false });
  route(sw, a, q, 0, q.length);
  sw.flush();
  const writes = (name: string) => log.filter((l) => l.port === name && l.op === 'write').map((l) => l.bytes!.length);
  assert.equal(writes('seed'), [1500, 1500, 1040]);
  assert.equal(writes('tun'), [996, 996, 548]);
  assert.is(m.fragmented, 6);
});

test('a packet from the fallback too big for its client: ICMP goes back into the fallback', () => {
  const { sw, log, m } = setup();
  const small = new FakePort('small', log, 1500, true);
  const tun = new FakePort('tun', log, 65535, false);
  sw.bind(B, small);
  sw.setFallback(tun);
  const p = packet(OUTSIDE, B, 9000);
  route(sw, tun, p, 0, p.length);
  sw.flush();
  assert.is(m.drops.too_big, 1);
  assert.is(log.length, 1);
  assert.is(log[0].port, 'tun');
  assert.is(readU32(Uint8Array.from(log[0].bytes!), DST), OUTSIDE);
});

test('an exactly-MTU packet is not too big', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 65000, true);
  const small = new FakePort('small', log, 1500, false);
  sw.bind(A, a);
  sw.bind(B, small);
  const p = packet(A, B, 1500);
  route(sw, a, p, 0, p.length);
  assert.is(m.drops.too_big + m.fragmented, 0);
  assert.is(log[0].bytes!.length, 1500);
});

test('too big without DF, but its fragment offset plus length pass 65,535: dropped (fragment_overflow), never fragmented with offsets that wrap', () => {
  const { sw, log, m } = setup();
  const a = new FakePort('a', log, 65000, true);
  const small = new FakePort('small', log, 1500, true, sw);
  sw.bind(A, a);
  sw.bind(B, small);
  // Offsets in 8-byte units: 8000 (64,000 bytes) + 2,000 = 66,000 > 65,535; 8000 + 1,535 is the most that fits.
  const at = (off: number, len: number) => {
    const p = packet(A, B, len, { df: false });
    p[6] = off >> 8;
    p[7] = off & 255;
    return p;
  };
  assert.is(datagramEnd(at(8000, 2000), 0, 2000), 66000);
  route(sw, a, at(8000, 2000), 0, 2000);
  route(sw, a, at(8191, 1600), 0, 1600);
  sw.flush();
  assert.is(m.drops.fragment_overflow, 2);
  assert.is(m.fragmented, 0);
  assert.equal(log.filter((l) => l.op === 'deliver'), []);
  // At the limit it is fragmented, and no fragment's offset wraps.
  route(sw, a, at(8000, 1535), 0, 1535);
  sw.flush();
  assert.is(m.drops.fragment_overflow, 2);
  const frags = Uint8Array.from(log.find((l) => l.op === 'deliver')!.bytes!);
  for (let o = 0; o < frags.length; ) {
    const off = ((frags[o + 6] & 0x1f) << 8) | frags[o + 7];
    assert.ok(off >= 8000, `offset ${off}`);
    o += (frags[o + 2] << 8) | frags[o + 3];
  }
});

test.run();
