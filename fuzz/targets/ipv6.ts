// The IPv6 data path of server/src/data/: what the server refuses to pass on (ipv6.ts's
// ipv6Problem: jumbograms, hop-by-hop jumbo options, extension-header chains too long or cut
// short, type 0 routing headers) and the switch's route6 (switch.ts) between ports of
// different MTUs, coalescing or not, with or without a fallback, with ICMPv6 Packet Too Big
// (ipv6.ts) for what does not fit.
//
// Checked against a model, packet by packet: the model walks the header chain on its own
// (a list of headers read front to back, not ipv6Problem's loop) and says refuse or pass;
// ipv6Problem must agree, and give the same verdict whatever bytes follow the packet in its
// buffer (it reads nothing past the frame). Each port receives exactly the packets the model
// sends it, byte for byte, in order, and nothing else; every drop is counted under its reason
// (bad_ipv6 for the refused, no_route, too_big). A Packet Too Big goes to the sender when the
// server has an IPv6 address and the packet is no ICMPv6 error from a unicast source: version
// 6, payload length right, next header 58, from the gateway to the sender, type 2 code 0, the
// MTU of the port, as much of the packet as fits 1,280 bytes, and a checksum that verifies
// (computed here, over the pseudo-header).
//
// Input: [MTU choices of three ports] [coalesce bits, fallback bit, gateway bit]
// [stream of frames...], framed as a session frames a chunk, all sent by port 0, whose own
// address every IPv6 source is rewritten to unless the frame's hop limit is odd (those are
// routed from whatever source they claim: route6 does not look at it).
import { Framer } from '../../protocol/index.js';
import { Metrics } from '../../server/src/metrics/metrics.js';
import { ipv6Problem } from '../../server/src/data/ipv6.js';
import { Switch } from '../../server/src/data/switch.js';
import { type FuzzTarget, InputReader, check } from '../engine/target.js';
import { RecordingPort } from './switch.js';

const MTUS = [1280, 1500, 9000, 65000];
const PREFIX = [0xfd, 0, 0, 5, 0, 6, 0, 0];
const addr6 = (tail: number[]) => Uint8Array.from([...PREFIX, ...new Array<number>(8 - tail.length).fill(0), ...tail]);
const GATEWAY6 = addr6([10, 0, 0, 1]);
// The third shares its key with the first (bytes 8-11 not zero, XOR equal): route6 must tell them apart.
const ADDRESSES6 = [addr6([10, 0, 0, 2]), addr6([10, 0, 0, 3]), addr6([0, 0, 0, 1, 10, 0, 0, 3])];

/** The model's verdict on an IPv6 packet: true when the server must refuse to pass it on. */
function modelRefuses(p: Uint8Array): boolean {
  const headers: Array<{ kind: number; body: Uint8Array }> = [];
  let kind = p[6];
  let rest = p.subarray(40);
  while ([0, 43, 44, 51, 60].includes(kind)) {
    if (headers.length === 8 || rest.length < 8) return true; // too many, or cut short
    const size = kind === 44 ? 8 : kind === 51 ? 4 * (rest[1] + 2) : 8 * (rest[1] + 1);
    if (size > rest.length) return true;
    headers.push({ kind, body: rest.subarray(0, size) });
    kind = rest[0];
    rest = rest.subarray(size);
  }
  if (p[6] === 0 && p.length === 40) return true; // jumbogram: payload length 0 behind a hop-by-hop header
  return headers.some((h, i) => (h.kind === 0 && (i > 0 || hasJumbo(h.body))) || (h.kind === 43 && h.body[2] === 0));
}

/** The options of a hop-by-hop header (after its 2 bytes), walked as TLVs: one is 0xc2 (jumbo payload). */
function hasJumbo(h: Uint8Array): boolean {
  let i = 2;
  while (i < h.length) {
    if (h[i] === 0xc2) return true;
    i = h[i] === 0 ? i + 1 : i + 2 + (h[i + 1] ?? 0);
  }
  return false;
}

/** RFC 1071 checksum of the ICMPv6 message m with its pseudo-header; 0 when it verifies. */
function icmp6Verify(m: Uint8Array): number {
  const words: number[] = [];
  const put = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i += 2) words.push((b[i] << 8) | (b[i + 1] ?? 0));
  };
  const len = m.length - 40;
  put(m.subarray(8, 40));
  put(Uint8Array.from([len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255, 0, 0, 0, 58]));
  put(m.subarray(40));
  let s = words.reduce((a, b) => a + b, 0);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const isError6 = (p: Uint8Array) => p[6] === 58 && p.length > 40 && p[40] < 128;
const mayAnswer = (p: Uint8Array) => p[8] !== 0xff && !p.subarray(8, 24).every((x) => x === 0) && !isError6(p);

type Expect = { kind: 'packet' | 'too_big'; p: Uint8Array; mtu: number };

/** A switch with ADDRESSES6 bound to `ports`, `tun` its fallback, and the server's IPv6 address or none. */
function switch6(ports: RecordingPort[], tun: RecordingPort | null, gateway: boolean) {
  const m = new Metrics();
  const sw = new Switch(m, 0x0a000001);
  if (gateway) sw.gateway6 = GATEWAY6;
  ports.forEach((p, k) => check(sw.bind6(ADDRESSES6[k], p), 'bind6 refused'));
  sw.setFallback(tun);
  return { sw, m };
}

export const ipv6Target: FuzzTarget = {
  name: 'ipv6',
  about: 'server/src/data ipv6 refusals and route6: extension-header chains, jumbograms, Packet Too Big, against a model',
  covers: ['server/src/data/ipv6.js', 'server/src/data/switch.js'],
  ciRuns: 3000,
  maxLength: 1 << 17,
  dictionary: [
    [0x60, 0x00], [0x00, 0x00], [0xc2, 0x04], [0x01, 0x00], [0x2b], [0x2c], [0x33], [0x3c], [0x3a], [0x3b], [0x00, 0x08],
    [0x05, 0x00], [0x04, 0xd8], [0x05, 0xdc], [0xff, 0xd7], [0xff, 0x02], [10, 0, 0, 2], [10, 0, 0, 3], [0x80], [0x02],
    [0xfd, 0, 0, 5, 0, 6, 0, 0],
  ].map((a) => Uint8Array.from(a)),
  seeds() {
    // A packet from port 0 to `dst`: `ext` the extension headers (next header fields filled in), then `payload` bytes.
    const packet = (dst: Uint8Array, payload: number, ext: number[][] = [], last = 17, hopLimit = 64) => {
      const kinds = ext.map((e) => e[0]);
      const chain = ext.flatMap((e, i) => [i + 1 < ext.length ? kinds[i + 1] : last, ...e.slice(1)]);
      const body = [...chain, ...Array.from({ length: payload }, (_, i) => i & 255)];
      return [0x60, 0, 0, 0, body.length >> 8, body.length & 255, ext.length ? kinds[0] : last, hopLimit, ...ADDRESSES6[0], ...dst, ...body];
    };
    const hbh = [0, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, one PadN option
    const frag = [44, 0, 0, 1, 0, 0, 0, 7]; // fragment, offset 0, more fragments
    const dest = [60, 0, 1, 4, 0, 0, 0, 0];
    const jumbo = [0, 0, 0xc2, 4, 0, 1, 0, 0];
    const routing0 = [43, 0, 0, 0, 0, 0, 0, 0];
    const echo = [128, 0, 0, 0, 0, 1, 0, 1];
    return [
      [0x00, 0b0110, ...packet(ADDRESSES6[1], 100), ...packet(ADDRESSES6[1], 60, [hbh, dest]), ...packet(ADDRESSES6[2], 80, [frag]), ...packet(ADDRESSES6[1], 0)],
      [0x05, 0b11000, ...packet(ADDRESSES6[1], 3000), ...packet(ADDRESSES6[2], 1300, [frag]), ...packet(addr6([10, 0, 0, 9]), 2000), ...packet(ADDRESSES6[1], 1400, [], 58, 64)],
      [0x1a, 0b11010, ...packet(ADDRESSES6[1], 40, [jumbo]), ...packet(ADDRESSES6[2], 40, [routing0]), ...packet(ADDRESSES6[1], 1, [dest, hbh]), ...packet(ADDRESSES6[1], 0, [[0]]), ...packet(ADDRESSES6[1], 0, [], 0)],
      [0x00, 0b10000, ...packet(ADDRESSES6[1], 8, [hbh, frag, dest, dest, dest, dest, dest, dest, dest]), ...packet(ADDRESSES6[1], 1300, [], 58).map((x, i) => (i === 40 ? 1 : x)), ...packet(ADDRESSES6[1], 1400, [], 17, 63).map((x, i) => (i >= 8 && i < 24 ? 0 : x)), ...packet(ADDRESSES6[1], 1400, [], 17, 63).map((x, i) => (i === 8 ? 0xff : x)), ...packet(ADDRESSES6[1], 8, [], 58).slice(0, 40).concat(echo)],
    ].map((a) => Uint8Array.from(a));
  },
  run(input) {
    const r = new InputReader(input);
    const cfg = r.u8();
    const bits = r.u8();
    const ports = ADDRESSES6.map((_, k) => new RecordingPort(`port ${k}`, MTUS[(cfg >> (k * 2)) & 3], ((bits >> k) & 1) === 1));
    const tun = (bits & 8) !== 0 ? new RecordingPort('tun', MTUS[(cfg >> 6) & 3], false) : null;
    const from = ports[0];
    const { sw, m } = switch6(ports, tun, (bits & 16) !== 0);
    const expected = new Map<RecordingPort, Expect[]>((tun ? [...ports, tun] : ports).map((p) => [p, []]));
    // The frames of one chunk, cut as a session cuts them (by the payload length, lies included).
    const f = new Framer(65535);
    f.push(Uint8Array.from(r.rest()));
    const drops = { no_route: 0, too_big: 0 };
    let refused = 0;
    for (let n; (n = f.advance()) > 0; ) {
      const o = f.start;
      const b = f.buf;
      if (b[o] >> 4 !== 6) continue;
      if ((b[o + 7] & 1) === 0) b.set(ADDRESSES6[0], o + 8);
      const p = b.slice(o, o + n);
      // The session's check before route6 (session.ts, receive6), against the model.
      const problem = ipv6Problem(b, o, n);
      check((problem !== null) === modelRefuses(p), `ipv6Problem says ${problem ?? 'pass'}, the model the opposite`);
      const padded = new Uint8Array(n + 64).fill(0xc2);
      padded.set(p);
      check(ipv6Problem(padded, 0, n) === problem, 'ipv6Problem reads past the packet');
      if (problem !== null) {
        refused++; // the session counts it (bad_ipv6) and never hands it to the switch
        continue;
      }
      const owner = ports.find((_, k) => same(ADDRESSES6[k], p.subarray(24, 40)));
      const to = owner ?? (tun !== null ? tun : null);
      if (to === null) drops.no_route++;
      else if (n <= to.mtu) expected.get(to)!.push({ kind: 'packet', p, mtu: to.mtu });
      else {
        drops.too_big++;
        if (sw.gateway6 !== null && mayAnswer(p)) expected.get(from)!.push({ kind: 'too_big', p, mtu: to.mtu });
      }
      sw.route6(from, b, o, n);
    }
    sw.flush();

    for (const [port, want] of expected) {
      const who = `${port.name} (MTU ${port.mtu}${port.coalesce ? ', coalescing' : ''})`;
      want.forEach((e, k) => {
        const g = port.got[k];
        check(g !== undefined, `${who}: ${port.got.length} packets, expected ${want.length}`);
        if (e.kind === 'packet') return check(same(g, e.p), `${who}: packet ${k} is not the one routed to it`);
        const quoted = Math.min(e.p.length, 1232);
        check(g.length === 48 + quoted && g.length <= 1280, `${who}: Packet Too Big of ${g.length} bytes for a packet of ${e.p.length}`);
        check(g[0] === 0x60 && ((g[4] << 8) | g[5]) === g.length - 40 && g[6] === 58, `${who}: Packet Too Big with a wrong IPv6 header`);
        check(same(g.subarray(8, 24), GATEWAY6) && same(g.subarray(24, 40), e.p.subarray(8, 24)), `${who}: Packet Too Big not from the gateway to the sender`);
        check(g[40] === 2 && g[41] === 0, `${who}: ICMPv6 type ${g[40]} code ${g[41]}, expected Packet Too Big`);
        check(((g[44] << 24) | (g[45] << 16) | (g[46] << 8) | g[47]) === e.mtu, `${who}: Packet Too Big names the wrong MTU`);
        check(icmp6Verify(g) === 0, `${who}: Packet Too Big with a bad checksum`);
        check(same(g.subarray(48), e.p.subarray(0, quoted)), `${who}: Packet Too Big does not quote the packet`);
      });
      check(port.got.length === want.length, `${port.name}: received ${port.got.length} packets, expected ${want.length}`);
    }
    check(refused === 0 || m.drops.bad_ipv6 === 0, 'the switch counted bad_ipv6, which only the session does');
    for (const [reason, n] of Object.entries(drops)) check(m.drops[reason as keyof typeof drops] === n, `drops ${reason}: counted ${m.drops[reason as keyof typeof drops]}, expected ${n}`);
  },
};
