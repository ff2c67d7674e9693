// The IPv4 data path of server/src/data/: the switch (switch.ts) routing the packets of one
// received chunk between ports of different MTUs, coalescing or not, with or without a
// fallback (the server's tun), and what it does with a packet too big for its port
// (too-big.ts: ICMP "fragmentation needed" for Don't Fragment, else fragments; a fragment
// whose offsets would wrap past 65,535 is dropped).
//
// Checked against a model, packet by packet: each port receives exactly the packets (or
// fragments of them) the model sends it, in order, and nothing else; runs handed to a
// coalescing port hold exactly the number of whole packets they claim; a packet goes back to
// its sender only as an ICMP error (or when the sender owns its destination); every drop is
// counted under its reason. Every ICMP message and fragment has a valid header checksum;
// fragments fit the MTU, carry the original header but for length, flags, offset and checksum,
// payloads of multiples of 8 bytes but the last, offsets and More Fragments that put the
// original back together exactly.
//
// Input: [MTU choices of three ports] [coalesce bits, fallback bit] [stream of frames...],
// framed as a session frames a chunk, all sent by port 0.
import { Framer, readU32 } from '../../protocol/index.js';
import { Metrics } from '../../server/src/metrics/metrics.js';
import type { Port } from '../../server/src/data/port.js';
import { Switch } from '../../server/src/data/switch.js';
import { checksum } from '../../server/src/data/too-big.js';
import { type FuzzTarget, InputReader, check } from '../engine/target.js';

const MTUS = [576, 1280, 1500, 9000, 65000, 600, 1000, 68 * 10];
const GATEWAY = 0x0a000001;
const ADDRESSES = [0x0a000002, 0x0a000003, 0x0a000004];

/** A port that records every packet it is handed, one entry per packet (IPv4 or IPv6: the ipv6 target's too). */
export class RecordingPort implements Port {
  readonly got: Uint8Array[] = [];
  corks = 0;
  constructor(
    readonly name: string,
    readonly mtu: number,
    readonly coalesce: boolean,
  ) {}
  write(buf: Uint8Array, off: number, len: number): boolean {
    check(off >= 0 && len > 0 && off + len <= buf.length, `${this.name}: write outside its buffer`);
    this.got.push(buf.slice(off, off + len));
    return true;
  }
  deliver(data: Uint8Array, packets: number): boolean {
    check(this.coalesce, `${this.name}: deliver() on a port that does not coalesce`);
    let at = 0;
    for (let k = 0; k < packets; k++) {
      check(at + 20 <= data.length, `${this.name}: a run claims ${packets} packets and holds ${k}`);
      const len = data[at] >> 4 === 6 ? 40 + ((data[at + 4] << 8) | data[at + 5]) : Math.max((data[at] & 15) * 4, (data[at + 2] << 8) | data[at + 3]);
      this.got.push(data.slice(at, at + len));
      at += len;
    }
    check(at === data.length, `${this.name}: a run of ${packets} packets has ${data.length - at} bytes over`);
    return true;
  }
  flush(): void {}
}

const headerOk = (p: Uint8Array) => checksum(p, 0, (p[0] & 15) * 4) === 0;

/** What the model expects a port to receive for packet `p`. */
type Expect = { kind: 'packet' | 'icmp'; p: Uint8Array; mtu: number } | { kind: 'fragments'; p: Uint8Array; mtu: number };

function checkFragments(got: Uint8Array[], p: Uint8Array, mtu: number, who: string): number {
  const hl = (p[0] & 15) * 4;
  const base = ((p[6] & 0x1f) << 8) | p[7];
  const mf = (p[6] & 0x20) !== 0;
  let done = 0;
  let k = 0;
  while (done < p.length - hl) {
    const f = got[k];
    check(f !== undefined, `${who}: fragments end after ${done} of ${p.length - hl} payload bytes`);
    check(f.length <= mtu && f.length === ((f[2] << 8) | f[3]), `${who}: fragment of ${f.length} bytes (length field ${(f[2] << 8) | f[3]}) for MTU ${mtu}`);
    check(headerOk(f), `${who}: fragment with a bad header checksum`);
    for (let i = 0; i < hl; i++) if (i !== 2 && i !== 3 && i !== 6 && i !== 7 && i !== 10 && i !== 11) check(f[i] === p[i], `${who}: fragment header byte ${i} changed`);
    const off = ((f[6] & 0x1f) << 8) | f[7];
    check(off * 8 === base * 8 + done, `${who}: fragment offset ${off * 8}, expected ${base * 8 + done}`);
    const len = f.length - hl;
    const last = done + len === p.length - hl;
    check(last || len % 8 === 0, `${who}: a fragment that is not the last has ${len} payload bytes`);
    check((f[6] & 0x40) === (p[6] & 0x40) && ((f[6] & 0x20) !== 0) === (!last || mf), `${who}: fragment flags wrong`);
    for (let i = 0; i < len; i++) check(f[hl + i] === p[hl + done + i], `${who}: fragment payload differs`);
    done += len;
    k++;
  }
  return k;
}

export const switchTarget: FuzzTarget = {
  name: 'switch',
  about: 'server/src/data switch and too-big handling: routing, runs, ICMP fragmentation-needed and fragments against a model',
  covers: ['server/src/data/switch.js', 'server/src/data/too-big.js'],
  ciRuns: 3000,
  maxLength: 1 << 17,
  dictionary: [
    [0x45, 0x00], [0x46, 0x00], [0x4f, 0x00], [0x40, 0x00], [0x20, 0x00], [0x1f, 0xff], [0x60, 0x00], [0x00, 0x00, 0x00, 0x01],
    [10, 0, 0, 2], [10, 0, 0, 3], [10, 0, 0, 4], [10, 0, 0, 9], [0x05, 0xdc], [0x05, 0xdd], [0x02, 0x40], [0x02, 0x41], [0xff, 0xff],
  ].map((a) => Uint8Array.from(a)),
  seeds() {
    const packet = (dst: number, total: number, flags = 0, offset = 0, ihl = 5) => {
      const p = new Uint8Array(total);
      p[0] = 0x40 | ihl;
      p[2] = total >> 8;
      p[3] = total;
      p[6] = flags | (offset >> 8);
      p[7] = offset;
      p[8] = 64;
      p[9] = 17;
      p.set([10, 0, 0, 2], 12);
      p.set([dst >>> 24, (dst >> 16) & 255, (dst >> 8) & 255, dst & 255], 16);
      for (let i = ihl * 4; i < total; i++) p[i] = i & 255;
      return Array.from(p);
    };
    return [
      [0, 0b1110, ...packet(ADDRESSES[1], 100), ...packet(ADDRESSES[1], 60), ...packet(ADDRESSES[2], 80), ...packet(ADDRESSES[1], 40)],
      [0x01, 0b1000, ...packet(ADDRESSES[1], 3000), ...packet(ADDRESSES[2], 3000, 0x40), ...packet(0x0a000009, 2000)],
      [0x20, 0b1010, ...packet(ADDRESSES[2], 1400, 0x20, 8100, 7), ...packet(ADDRESSES[1], 1500), ...packet(0x08080808, 100)],
    ].map((a) => Uint8Array.from(a));
  },
  run(input) {
    const r = new InputReader(input);
    const cfg = r.u8();
    const bits = r.u8();
    const ports = ADDRESSES.map((_, k) => new RecordingPort(`port ${k}`, MTUS[(cfg >> (k * 3)) & 7] ?? 1500, ((bits >> k) & 1) === 1));
    const tun = (bits & 8) !== 0 ? new RecordingPort('tun', MTUS[(cfg >> 6) & 3 ? 2 : 4], false) : null;
    const m = new Metrics();
    const sw = new Switch(m, GATEWAY);
    ports.forEach((p, k) => check(sw.bind(ADDRESSES[k], p), 'bind refused'));
    sw.setFallback(tun);
    const from = ports[0];

    // The chunk, framed as a session does; frames that are not IPv4 are not routed.
    const chunk = Uint8Array.from(r.rest());
    const f = new Framer(65535);
    f.push(chunk);
    const expected = new Map<RecordingPort, Expect[]>([...ports, ...(tun ? [tun] : [])].map((p) => [p, []]));
    const drops = { no_route: 0, too_big: 0, fragment_overflow: 0 };
    for (let n; (n = f.advance()) > 0; ) {
      const o = f.start;
      if (f.buf[o] >> 4 !== 4) continue;
      const p = f.buf.slice(o, o + n);
      const dst = readU32(p, 16);
      const owner = ports.find((_, k) => ADDRESSES[k] === dst);
      const to = owner ?? (tun !== null && tun !== from ? tun : null);
      if (to === null) drops.no_route++;
      else if (n <= to.mtu) expected.get(to)!.push({ kind: 'packet', p, mtu: to.mtu });
      else if ((p[6] & 0x40) !== 0) {
        drops.too_big++;
        expected.get(from)!.push({ kind: 'icmp', p, mtu: to.mtu });
      } else if ((((p[6] & 0x1f) << 8) | p[7]) * 8 + n > 65535) drops.fragment_overflow++;
      else expected.get(to)!.push({ kind: 'fragments', p, mtu: to.mtu });
      sw.route(from, f.buf, o, n, dst);
    }
    sw.flush();

    for (const [port, want] of expected) {
      let k = 0;
      for (const e of want) {
        const who = `${port.name} (MTU ${port.mtu}${port.coalesce ? ', coalescing' : ''})`;
        if (e.kind === 'packet') {
          const g = port.got[k++];
          check(g !== undefined && g.length === e.p.length && g.every((x, i) => x === e.p[i]), `${who}: packet ${k - 1} is not the one routed to it`);
        } else if (e.kind === 'icmp') {
          const g = port.got[k++];
          check(g !== undefined && g[9] === 1 && g[20] === 3 && g[21] === 4, `${who}: expected ICMP fragmentation needed`);
          check(headerOk(g) && checksum(g, 20, g.length - 20) === 0, `${who}: ICMP with a bad checksum`);
          check(readU32(g, 12) === GATEWAY && readU32(g, 16) === readU32(e.p, 12), `${who}: ICMP not from the gateway to the sender`);
          check(((g[26] << 8) | g[27]) === e.mtu, `${who}: ICMP names MTU ${(g[26] << 8) | g[27]}, expected ${e.mtu}`);
          const quoted = Math.min(e.p.length, (e.p[0] & 15) * 4 + 8);
          check(g.length === 28 + quoted && g.subarray(28).every((x, i) => x === e.p[i]), `${who}: ICMP does not quote the packet's header and 8 bytes`);
        } else {
          k += checkFragments(port.got.slice(k), e.p, e.mtu, who);
        }
      }
      check(k === port.got.length, `${port.name}: received ${port.got.length} packets, expected ${k}`);
    }
    for (const [reason, n] of Object.entries(drops)) check(m.drops[reason as keyof typeof drops] === n, `drops ${reason}: counted ${m.drops[reason as keyof typeof drops]}, expected ${n}`);
  },
};
