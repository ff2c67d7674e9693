// IPv6 packets for tests: plain ones, with extension headers, and the hostile shapes the
// server must drop (test/integration/server/ipv6.test.ts, the hardening fuzz set).
import { parseIPv6 } from '../../protocol/index.js';

export const v6 = (s: string): Uint8Array => {
  const a = parseIPv6(s);
  if (a === null) throw new Error('bad IPv6 address in test: ' + s);
  return a;
};

/**
 * An IPv6 packet from `src` to `dst` whose payload is `payload` (after `ext`, extension
 * header bytes whose chain starts with `first`), next header `next` after the chain.
 * `claim`, when given, is written as the payload length instead of the true one.
 */
export function packet6(src: Uint8Array, dst: Uint8Array, payload: Uint8Array | number, opts: { next?: number; ext?: Uint8Array; first?: number; claim?: number; fill?: number } = {}): Uint8Array {
  const body = typeof payload === 'number' ? new Uint8Array(payload).fill(opts.fill ?? 0xa5) : payload;
  const ext = opts.ext ?? new Uint8Array(0);
  const len = ext.length + body.length;
  const p = new Uint8Array(40 + len);
  p[0] = 0x60;
  const claim = opts.claim ?? len;
  p[4] = claim >> 8;
  p[5] = claim;
  p[6] = ext.length ? (opts.first ?? 0) : (opts.next ?? 17);
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p.set(ext, 40);
  p.set(body, 40 + ext.length);
  return p;
}

/** An extension header of `units` 8-byte units (type-specific bytes zero) followed by `next`. */
export function extHeader(next: number, units = 1, type2 = 0): Uint8Array {
  const h = new Uint8Array(units * 8);
  h[0] = next;
  h[1] = units - 1;
  h[2] = type2; // for a routing header: its routing type
  h[3] = 1; // segments left (routing): something to do
  return h;
}

/** `n` destination-options headers chained, the last followed by `next`. */
export function extChain(n: number, next = 17): Uint8Array {
  const out = new Uint8Array(n * 8);
  for (let i = 0; i < n; i++) out.set(extHeader(i === n - 1 ? next : 60), i * 8);
  return out;
}

/** A hop-by-hop header holding the jumbo payload option (RFC 2675) with `jumbo` as its length. */
export function jumboHopByHop(next: number, jumbo: number): Uint8Array {
  const h = new Uint8Array(8);
  h[0] = next;
  h[1] = 0;
  h[2] = 0xc2;
  h[3] = 4;
  h[4] = jumbo >>> 24;
  h[5] = jumbo >>> 16;
  h[6] = jumbo >>> 8;
  h[7] = jumbo;
  return h;
}

/** The ICMPv6 checksum over a whole packet (pseudo-header included): 0 when the packet's is right. */
export function icmp6Verify(p: Uint8Array): number {
  const n = p.length - 40;
  let sum = n + 58;
  const add = (b: Uint8Array, o: number, len: number) => {
    for (let i = 0; i < len; i += 2) sum += (b[o + i] << 8) | (i + 1 < len ? b[o + i + 1] : 0);
  };
  add(p, 8, 32);
  add(p, 40, n);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}
