// Coalescing on the write side (GRO in user space): consecutive TCP/IPv4 segments of one
// flow, as they come off the tunnel, become one super-packet written to a tun opened with a
// virtio-net header, so the kernel's TCP takes one packet where it would have taken dozens.
// The rules are the kernel's own (tcp_gro_receive, inet_gro_receive), narrowed as
// wireguard-go narrows them:
//  - only segments with ACK or ACK|PSH set and a payload; PSH ends the super-packet;
//  - no IPv4 options, no fragments; the same TOS, TTL and DF bit; IDs that count up by one
//    per segment, as Linux's TCP sends them and as splitting gives them back (the kernel
//    also takes a fixed ID with DF, which a virtio-net header cannot express);
//  - the same TCP header length, options byte for byte, and acknowledgment number;
//  - each sequence number right after the last; every segment as long as the first
//    (gso_size) except a shorter last one, which ends the super-packet;
//  - 65535 bytes at most, the IPv4 limit.
// Anything else is written as it came, after the held super-packet of its flow, so that a
// flow's packets keep their order. The segments' own TCP checksums are not verified: the
// super-packet goes to the kernel with a partial checksum (NEEDS_CSUM), as wireguard-go
// writes them; the tunnel's TCP (and TLS) is what protects the bytes in transit.

import { tcp4Headers } from './split.js';
import {
  GSO_NONE,
  GSO_TCPV4,
  IPPROTO_TCP,
  TCP_ACK,
  TCP_PSH,
  VNET_F_NEEDS_CSUM,
  VNET_HDR_LEN,
  fold,
  ipv4Checksum,
  pseudo4,
  writeVnet,
} from './vnet.js';

/** Where coalesced packets go: a tun opened with IFF_VNET_HDR (linux/tun.ts's TunDevice). */
export interface VnetSink {
  /** One plain packet (the device puts a zero virtio-net header before it). */
  write(buf: Uint8Array, off: number, len: number): boolean;
  /** A packet behind the 10-byte virtio-net header `hdr`. */
  writeVnet(hdr: Uint8Array, buf: Uint8Array, off: number, len: number): boolean;
  /** The same, the packet given in two parts: a[aOff, +aLen) then b[bOff, +bLen) (pushSuper's `tail`). */
  writeVnetParts?(hdr: Uint8Array, a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): boolean;
}

export interface CoalesceStats {
  /** Super-packets written (two segments or more each). */
  superPackets: number;
  /** Segments that went into them. */
  segments: number;
  /** Super-packets that came whole (pushSuper) and were written as they came. */
  passed: number;
  /** Super-packets pushSuper() refused: not TCP over IPv4, or lengths that disagree. */
  malformed: number;
}

const MAX_IP = 65535;

class Slot {
  readonly buf = new Uint8Array(MAX_IP);
  len = 0;
  hdrs = 0;
  gsoSize = 0;
  count = 0;
  nextSeq = 0;
  id0 = 0;
  psh = false;
  /** Holding a super-packet in the making (it is in Coalescer.open). */
  used = false;
}

const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

/** The TCP header length when p[off, off + len) may be coalesced, else 0. */
function candidate(p: Uint8Array, off: number, len: number): number {
  if (len < 41 || p[off] !== 0x45 || p[off + 9] !== IPPROTO_TCP) return 0;
  if (((p[off + 2] << 8) | p[off + 3]) !== len) return 0;
  if ((((p[off + 6] << 8) | p[off + 7]) & 0x3fff) !== 0) return 0; // MF or a fragment offset
  const flags = p[off + 33];
  if (flags !== TCP_ACK && flags !== (TCP_ACK | TCP_PSH)) return 0;
  const thl = (p[off + 32] >> 4) * 4;
  if (thl < 20 || 20 + thl >= len) return 0; // no payload: nothing to coalesce
  return thl;
}

/** Same addresses and ports: the TCP packet at p[off] (IPv4 header of `ihl` bytes) belongs to the slot's flow. */
function sameFlow(s: Slot, p: Uint8Array, off: number, ihl: number): boolean {
  const b = s.buf;
  return u32(b, 12) === u32(p, off + 12) && u32(b, 16) === u32(p, off + 16) && u32(b, 20) === u32(p, off + ihl);
}

export class Coalescer {
  readonly stats: CoalesceStats = { superPackets: 0, segments: 0, passed: 0, malformed: 0 };
  private readonly slots: Slot[] = [];
  /** Slots holding a super-packet in the making, oldest first. */
  private readonly open: Slot[] = [];
  private readonly hdr = new Uint8Array(VNET_HDR_LEN);

  /** `flows`: how many flows may be held at once; each takes 64 KiB. */
  constructor(
    private readonly sink: VnetSink,
    flows = 8,
  ) {
    for (let i = 0; i < flows; i++) this.slots.push(new Slot());
  }

  /**
   * Takes one packet, p[off, off + len), valid only during the call. A segment that can be
   * coalesced is copied and held until it cannot grow or flush(); anything else is written at
   * once (after its flow's held super-packet). False when a write it made was dropped.
   */
  push(p: Uint8Array, off: number, len: number): boolean {
    const thl = candidate(p, off, len);
    const open = this.open;
    let s: Slot | null = null;
    let at = -1;
    const ihl = (p[off] & 15) * 4;
    // Addresses (bytes 12 to 20) and ports inside the packet: nothing read past its end.
    if (len >= 20 && len >= ihl + 4 && p[off] >> 4 === 4 && p[off + 9] === IPPROTO_TCP) {
      for (let i = 0; i < open.length; i++) {
        if (sameFlow(open[i], p, off, ihl)) {
          s = open[i];
          at = i;
          break;
        }
      }
    }
    let ok = true;
    if (thl === 0) {
      if (s) ok = this.emit(at);
      return this.sink.write(p, off, len) && ok;
    }
    if (s) {
      if (this.fits(s, p, off, len, thl)) return this.append(s, at, p, off, len, thl);
      ok = this.emit(at);
    }
    if (open.length === this.slots.length) ok = this.emit(0) && ok;
    s = this.take();
    s.buf.set(p.subarray(off, off + len), 0);
    s.len = len;
    s.hdrs = 20 + thl;
    s.gsoSize = len - s.hdrs;
    s.count = 1;
    s.nextSeq = (u32(p, off + 24) + s.gsoSize) >>> 0;
    s.id0 = (p[off + 4] << 8) | p[off + 5];
    s.psh = (p[off + 33] & TCP_PSH) !== 0;
    open.push(s);
    if (s.psh) return this.emit(open.length - 1) && ok;
    return ok;
  }

  /**
   * Takes a whole TCP/IPv4 super-packet, p[off, off + len), whose segments carry `gsoSize`
   * payload bytes (one that came through the tunnel as it was read from a tun): written at
   * once, after its flow's held one, with its IPv4 checksum and a partial TCP checksum made
   * here (what it came with is not trusted). It is changed in place. False when it was
   * malformed (counted in stats.malformed) or the write was dropped. With `tail`, it came in
   * two parts (a frame that spanned two reads): p[off, off + len - tailLen) holding its
   * headers whole, then tail[tailOff, tailOff + tailLen), written with the sink's writeVnetParts.
   */
  pushSuper(p: Uint8Array, off: number, len: number, gsoSize: number, tail?: Uint8Array, tailOff = 0, tailLen = 0): boolean {
    const hdrs = tcp4Headers(p, off, len);
    if (hdrs < 0 || gsoSize <= 0) {
      this.stats.malformed++;
      return false;
    }
    const ihl = (p[off] & 15) * 4;
    const open = this.open;
    let ok = true;
    for (let i = 0; i < open.length; i++) {
      if (sameFlow(open[i], p, off, ihl)) {
        ok = this.emit(i);
        break;
      }
    }
    ipv4Checksum(p, off, ihl);
    const c = fold(pseudo4(p, off, IPPROTO_TCP, len - ihl));
    p[off + ihl + 16] = c >> 8;
    p[off + ihl + 17] = c;
    const whole = len - hdrs <= gsoSize; // one segment's worth: an ordinary packet
    writeVnet(this.hdr, 0, VNET_F_NEEDS_CSUM, whole ? GSO_NONE : GSO_TCPV4, hdrs, whole ? 0 : gsoSize, ihl, 16);
    this.stats.passed++;
    const sink = this.sink;
    if (tail === undefined) return sink.writeVnet(this.hdr, p, off, len) && ok;
    return sink.writeVnetParts!(this.hdr, p, off, len - tailLen, tail, tailOff, tailLen) && ok;
  }

  /** Writes every held super-packet, oldest first. False when a write was dropped. */
  flush(): boolean {
    let ok = true;
    while (this.open.length) ok = this.emit(0) && ok;
    return ok;
  }

  /** Whether the segment p[off] (already a candidate) continues the slot's super-packet. */
  private fits(s: Slot, p: Uint8Array, off: number, len: number, thl: number): boolean {
    const b = s.buf;
    const payload = len - 20 - thl;
    if (s.psh || s.len - s.hdrs !== s.count * s.gsoSize) return false; // ended by PSH or a short segment
    if (20 + thl !== s.hdrs || payload > s.gsoSize || s.len + payload > MAX_IP) return false;
    if (b[1] !== p[off + 1] || b[8] !== p[off + 8] || (b[6] & 0x40) !== (p[off + 6] & 0x40)) return false;
    if (((p[off + 4] << 8) | p[off + 5]) !== ((s.id0 + s.count) & 0xffff)) return false;
    if (u32(p, off + 24) !== s.nextSeq || u32(p, off + 28) !== u32(b, 28)) return false;
    for (let i = 40; i < s.hdrs; i++) if (b[i] !== p[off + i]) return false;
    return true;
  }

  private append(s: Slot, at: number, p: Uint8Array, off: number, len: number, thl: number): boolean {
    const payload = len - 20 - thl;
    s.buf.set(p.subarray(off + 20 + thl, off + len), s.len);
    s.len += payload;
    s.count++;
    s.nextSeq = (s.nextSeq + payload) >>> 0;
    if (p[off + 33] & TCP_PSH) s.psh = true;
    // Ended: PSH, a short segment, or no room for another full one.
    if (s.psh || payload < s.gsoSize || s.len + s.gsoSize > MAX_IP) return this.emit(at);
    return true;
  }

  private take(): Slot {
    for (let i = 0; i < this.slots.length; i++) {
      const s = this.slots[i];
      if (!s.used) {
        s.used = true;
        return s;
      }
    }
    throw new Error('Coalescer: no free slot'); // unreachable: push() empties one first
  }

  /** Writes open[at] and frees its slot. */
  private emit(at: number): boolean {
    const open = this.open;
    const s = open[at];
    for (let i = at + 1; i < open.length; i++) open[i - 1] = open[i];
    open.length--;
    s.used = false;
    const b = s.buf;
    if (s.count === 1) return this.sink.write(b, 0, s.len);
    b[2] = s.len >> 8;
    b[3] = s.len;
    ipv4Checksum(b, 0, 20);
    if (s.psh) b[33] |= TCP_PSH;
    // A partial checksum: the pseudo-header's sum, which the kernel completes or trusts.
    const c = fold(pseudo4(b, 0, IPPROTO_TCP, s.len - 20));
    b[36] = c >> 8;
    b[37] = c;
    writeVnet(this.hdr, 0, VNET_F_NEEDS_CSUM, GSO_TCPV4, s.hdrs, s.gsoSize, 20, 16);
    this.stats.superPackets++;
    this.stats.segments += s.count;
    return this.sink.writeVnet(this.hdr, b, 0, s.len);
  }
}
