// IPv6 packets on the data side: which ones the server refuses to pass on, and ICMPv6
// Packet Too Big. A router never fragments IPv6 (RFC 8200 §5): a packet larger than the
// next link's MTU is dropped and its sender told the MTU, so its path-MTU discovery adapts.

import { DST6, HEADER6, MIN_MTU6, SRC6 } from '../../../protocol/index.js';

const HOP_BY_HOP = 0;
const ROUTING = 43;
const FRAGMENT = 44;
const ICMP6 = 58;
const DEST_OPTS = 60;
const AH = 51;
/** More extension headers than any real packet needs (RFC 8200 lists at most 6 kinds, a few twice). */
export const MAX_EXT_HEADERS = 8;
const JUMBO_OPTION = 0xc2;

/**
 * Why the IPv6 packet b[o, o + n) is not passed on, or null. The framer already made
 * n = 40 + payload length. Refused: a jumbogram (payload length 0 with a hop-by-hop
 * header, or the jumbo option: RFC 2675, never valid on a link whose MTU is below 64 KiB,
 * and a stream framed by the payload length cannot carry one), a chain of extension headers
 * longer than MAX_EXT_HEADERS or cut short by the packet's end, a hop-by-hop header that is
 * not first, and a type 0 routing header (RFC 5095). Only the chain is walked, bounded; no
 * payload is read.
 */
export function ipv6Problem(b: Uint8Array, o: number, n: number): string | null {
  let next = b[o + 6];
  if (next === HOP_BY_HOP && n === HEADER6) return 'jumbogram (payload length 0 with a hop-by-hop header)';
  let at = HEADER6;
  for (let i = 0; ; i++) {
    if (next !== HOP_BY_HOP && next !== ROUTING && next !== FRAGMENT && next !== DEST_OPTS && next !== AH) return null;
    if (i === MAX_EXT_HEADERS) return `more than ${MAX_EXT_HEADERS} extension headers`;
    if (next === HOP_BY_HOP && i !== 0) return 'hop-by-hop header not first';
    if (at + 8 > n) return 'extension header cut short';
    const p = o + at;
    // Fragment: 8 bytes; AH: (len + 2) * 4; the others: (len + 1) * 8.
    const len = next === FRAGMENT ? 8 : next === AH ? (b[p + 1] + 2) * 4 : (b[p + 1] + 1) * 8;
    if (at + len > n) return 'extension header cut short';
    if (next === ROUTING && b[p + 2] === 0) return 'type 0 routing header';
    if (next === HOP_BY_HOP && hasJumboOption(b, p + 2, p + len)) return 'jumbo payload option';
    next = b[p];
    at += len;
  }
}

/** True when the options in b[from, to) hold the jumbo payload option. */
function hasJumboOption(b: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; ) {
    const type = b[i];
    if (type === JUMBO_OPTION) return true;
    if (type === 0) i++; // Pad1
    else i += 2 + (i + 1 < to ? b[i + 1] : 0);
  }
  return false;
}

/** RFC 1071 sum of b[o, o + n), not folded. */
function sum16(b: Uint8Array, o: number, n: number, sum: number): number {
  for (let i = 0; i + 1 < n; i += 2) sum += (b[o + i] << 8) | b[o + i + 1];
  if (n & 1) sum += b[o + n - 1] << 8;
  return sum;
}

/** The ICMPv6 checksum of the message at m[40, 40 + payload), pseudo-header included (RFC 8200 §8.1). */
export function icmp6Checksum(m: Uint8Array): number {
  const payload = m.length - HEADER6;
  let sum = sum16(m, SRC6, 32, payload + ICMP6);
  sum = sum16(m, HEADER6, payload, sum);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/**
 * Whether the packet at b[o] may be answered with an ICMPv6 error: not when it is an ICMPv6
 * error itself (RFC 4443 §2.4 e), nor when its source is unspecified (::) or multicast.
 */
export function mayAnswer6(b: Uint8Array, o: number): boolean {
  if (b[o + SRC6] === 0xff) return false;
  let zero = true;
  for (let i = 0; i < 16 && zero; i++) zero = b[o + SRC6 + i] === 0;
  if (zero) return false;
  return !(b[o + 6] === ICMP6 && b[o + HEADER6] < 128);
}

/**
 * ICMPv6 Packet Too Big (type 2, code 0) from `from` (16 bytes) to the source of the packet
 * b[o, o + n), with `mtu`, quoting as much of it as keeps the message within 1280 bytes.
 */
export function packetTooBig6(b: Uint8Array, o: number, n: number, mtu: number, from: Uint8Array): Uint8Array {
  const quoted = Math.min(n, MIN_MTU6 - HEADER6 - 8);
  const payload = 8 + quoted;
  const m = new Uint8Array(HEADER6 + payload);
  m[0] = 0x60;
  m[4] = payload >> 8;
  m[5] = payload;
  m[6] = ICMP6;
  m[7] = 64; // hop limit
  m.set(from, SRC6);
  m.set(b.subarray(o + SRC6, o + SRC6 + 16), DST6);
  m[40] = 2; // Packet Too Big
  m[44] = mtu >>> 24;
  m[45] = mtu >>> 16;
  m[46] = mtu >>> 8;
  m[47] = mtu;
  m.set(b.subarray(o, o + quoted), 48);
  const c = icmp6Checksum(m);
  m[42] = c >> 8;
  m[43] = c;
  return m;
}
