// Packets larger than the MTU of the client they are for. Clients may have different MTUs
// (a Linux client takes 64 KB packets, a seed device or a microcontroller 1500 bytes), so
// the server does what a router does between links of different MTU: a packet that must
// not be fragmented (DF) is answered with ICMP "fragmentation needed" carrying the MTU
// (RFC 1191), so the sender's path-MTU discovery adapts; any other is fragmented.

import { DST, SRC, readU32, writeU32 } from '../../../protocol/index.js';

/** RFC 1071 checksum of b[o, o + n). */
export function checksum(b: Uint8Array, o: number, n: number): number {
  let sum = 0;
  for (let i = 0; i + 1 < n; i += 2) sum += (b[o + i] << 8) | b[o + i + 1];
  if (n & 1) sum += b[o + n - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

const DF = 0x40;

/** True when the IPv4 packet at b[o] has Don't Fragment set. */
export function dontFragment(b: Uint8Array, o: number): boolean {
  return (b[o + 6] & DF) !== 0;
}

/**
 * ICMP "destination unreachable, fragmentation needed" from `from` to the packet's source,
 * quoting its header and first 8 bytes of payload, with `mtu` as the next-hop MTU.
 */
export function fragmentationNeeded(b: Uint8Array, o: number, n: number, mtu: number, from: number): Uint8Array {
  const quoted = Math.min(n, ((b[o] & 15) << 2) + 8);
  const total = 20 + 8 + quoted;
  const m = new Uint8Array(total);
  m[0] = 0x45;
  m[2] = total >> 8;
  m[3] = total;
  m[8] = 64; // TTL
  m[9] = 1; // ICMP
  writeU32(m, SRC, from);
  writeU32(m, DST, readU32(b, o + SRC));
  const c = checksum(m, 0, 20);
  m[10] = c >> 8;
  m[11] = c;
  m[20] = 3; // destination unreachable
  m[21] = 4; // fragmentation needed and DF set
  m[26] = mtu >> 8;
  m[27] = mtu;
  m.set(b.subarray(o, o + quoted), 28);
  const ic = checksum(m, 20, total - 20);
  m[22] = ic >> 8;
  m[23] = ic;
  return m;
}

/**
 * Where the IPv4 packet b[o, o + n) ends in the datagram it belongs to: its fragment offset
 * (8-byte units) times 8, plus its length. A datagram cannot reach past 65,535 bytes; for a
 * packet that claims to, the 13-bit offsets of its fragments would wrap around to the start.
 */
export function datagramEnd(b: Uint8Array, o: number, n: number): number {
  return ((((b[o + 6] & 0x1f) << 8) | b[o + 7]) << 3) + n;
}

/**
 * Splits the IPv4 packet b[o, o + n) into fragments of at most `mtu` bytes, all in one
 * buffer back to back (one write). Options are copied into every fragment, which RFC 791
 * allows for all but a few rarely used ones. The caller checks datagramEnd() first: a
 * packet reaching past 65,535 bytes cannot be fragmented.
 */
export function fragment(b: Uint8Array, o: number, n: number, mtu: number): { data: Uint8Array; count: number } {
  const hl = (b[o] & 15) << 2;
  const step = (mtu - hl) & ~7; // fragment payloads are multiples of 8 bytes
  const payload = n - hl;
  const count = Math.ceil(payload / step);
  const out = new Uint8Array(payload + count * hl);
  const flagsOffset = ((b[o + 6] << 8) | b[o + 7]) & 0x3fff; // MF and offset of the original
  const baseOffset = flagsOffset & 0x1fff;
  const moreAfter = (flagsOffset & 0x2000) !== 0;
  let at = 0;
  for (let done = 0; done < payload; done += step) {
    const len = Math.min(step, payload - done);
    out.set(b.subarray(o, o + hl), at);
    out.set(b.subarray(o + hl + done, o + hl + done + len), at + hl);
    const total = hl + len;
    const more = done + len < payload || moreAfter;
    const off = baseOffset + done / 8;
    out[at + 2] = total >> 8;
    out[at + 3] = total;
    out[at + 6] = (more ? 0x20 : 0) | ((off >> 8) & 0x1f);
    out[at + 7] = off;
    out[at + 10] = 0;
    out[at + 11] = 0;
    const c = checksum(out, at, hl);
    out[at + 10] = c >> 8;
    out[at + 11] = c;
    at += total;
  }
  return { data: out, count };
}
