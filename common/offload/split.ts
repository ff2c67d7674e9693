// Segmentation in user space (GSO): a TCP/IPv4 super-packet the kernel handed over whole
// (a tun with TSO on, or a peer that sends them) cut into segments of gso_size payload
// bytes, each a packet the kernel could have sent itself: the headers copied, the IPv4
// total length, ID (the first segment's, then +1 each) and header checksum, the TCP
// sequence number, flags (FIN and PSH on the last segment only, CWR on the first only) and
// checksum fixed. Writes into the caller's buffer: nothing allocated per packet.

import { IPPROTO_TCP, TCP_CWR, TCP_FIN, TCP_PSH, fold, ipv4Checksum, pseudo4, sum16 } from './vnet.js';

/** Where the segments of the last split went, in the caller's `out` (reused: no allocation). */
export interface Segments {
  /** Offsets in `out` of each segment; segment i is out[offsets[i], offsets[i] + lengths[i]). */
  offsets: Uint32Array;
  lengths: Uint32Array;
}

/** Why a packet cannot be split, or 0 when it can; see splitTcp4. */
export const SPLIT_OK = 0;
export const SPLIT_MALFORMED = -1; // not TCP over IPv4, or lengths that disagree
export const SPLIT_NO_ROOM = -2; // `out` or the index arrays are too small

/** How many bytes the segments of a `len`-byte super-packet with `hdrs` bytes of headers need. */
export function splitSize(len: number, hdrs: number, gsoSize: number): number {
  const payload = len - hdrs;
  const n = payload <= 0 ? 1 : Math.ceil(payload / gsoSize);
  return len + (n - 1) * hdrs;
}

/**
 * The IPv4 and TCP header length of the TCP/IPv4 packet at p[off, off + len), or
 * SPLIT_MALFORMED. The IPv4 total length must be `len` (a super-packet's is, up to 65535).
 */
export function tcp4Headers(p: Uint8Array, off: number, len: number): number {
  if (len < 40 || p[off] >> 4 !== 4 || p[off + 9] !== IPPROTO_TCP) return SPLIT_MALFORMED;
  const ihl = (p[off] & 15) * 4;
  if (ihl < 20 || ((p[off + 2] << 8) | p[off + 3]) !== len) return SPLIT_MALFORMED;
  // A fragment (MF or an offset) cannot be segmented.
  if ((((p[off + 6] << 8) | p[off + 7]) & 0x3fff) !== 0) return SPLIT_MALFORMED;
  if (ihl + 20 > len) return SPLIT_MALFORMED;
  const thl = (p[off + ihl + 12] >> 4) * 4;
  if (thl < 20 || ihl + thl > len) return SPLIT_MALFORMED;
  return ihl + thl;
}

/**
 * Splits the TCP/IPv4 super-packet p[off, off + len) into segments of at most `gsoSize`
 * payload bytes, written back to back into out[outOff...]; their places go into `seg` from
 * index `at`. Returns the number of segments, or SPLIT_MALFORMED / SPLIT_NO_ROOM (nothing
 * usable written). The super-packet's own checksums are ignored (a kernel's GSO packet holds
 * only a partial one): every segment's are computed afresh.
 */
export function splitTcp4(p: Uint8Array, off: number, len: number, gsoSize: number, out: Uint8Array, outOff: number, seg: Segments, at: number): number {
  const hdrs = tcp4Headers(p, off, len);
  if (hdrs < 0 || gsoSize <= 0) return SPLIT_MALFORMED;
  const ihl = (p[off] & 15) * 4;
  const payload = len - hdrs;
  const n = payload <= 0 ? 1 : Math.ceil(payload / gsoSize);
  if (outOff + len + (n - 1) * hdrs > out.length || at + n > seg.offsets.length || at + n > seg.lengths.length) return SPLIT_NO_ROOM;
  const id0 = (p[off + 4] << 8) | p[off + 5];
  const tcp = off + ihl;
  const seq0 = ((p[tcp + 4] << 24) | (p[tcp + 5] << 16) | (p[tcp + 6] << 8) | p[tcp + 7]) >>> 0;
  const flags = p[tcp + 13];
  let o = outOff;
  for (let i = 0, from = off + hdrs; i < n; i++, from += gsoSize) {
    const take = Math.min(gsoSize, off + len - from);
    const size = hdrs + Math.max(take, 0);
    out.set(p.subarray(off, off + hdrs), o);
    if (take > 0) out.set(p.subarray(from, from + take), o + hdrs);
    // IPv4: total length, ID, header checksum.
    out[o + 2] = size >> 8;
    out[o + 3] = size;
    const id = (id0 + i) & 0xffff;
    out[o + 4] = id >> 8;
    out[o + 5] = id;
    ipv4Checksum(out, o, ihl);
    // TCP: sequence number, flags, checksum.
    const t = o + ihl;
    const seq = (seq0 + i * gsoSize) >>> 0;
    out[t + 4] = seq >>> 24;
    out[t + 5] = seq >>> 16;
    out[t + 6] = seq >>> 8;
    out[t + 7] = seq;
    let f = flags;
    if (i !== n - 1) f &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) f &= ~TCP_CWR;
    out[t + 13] = f;
    out[t + 16] = 0;
    out[t + 17] = 0;
    const c = ~fold(sum16(out, t, o + size, pseudo4(out, o, IPPROTO_TCP, size - ihl))) & 0xffff;
    out[t + 16] = c >> 8;
    out[t + 17] = c;
    seg.offsets[at + i] = o;
    seg.lengths[at + i] = size;
    o += size;
  }
  return n;
}
