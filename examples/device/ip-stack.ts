// A minimal IPv4 endpoint for a device that has no network stack of its own. It answers
// ICMP echo requests (ping) sent to its VPN address, builds UDP datagrams, hands received
// UDP to one callback, and drops everything else with a counter. No fragments, no options
// in what it sends, no ARP (the VPN carries bare IP packets), no allocation except for the
// packets it sends. Pure TypeScript, no runtime APIs: it runs wherever the SDK runs.

const ICMP = 1;
const UDP = 17;
const ICMP6 = 58;

/** The 16-bit one's-complement sum of b[off, off+len) (RFC 1071), not yet folded. */
export function sum16(b: Uint8Array, off: number, len: number, sum = 0): number {
  const end = off + (len & ~1);
  for (let i = off; i < end; i += 2) sum += (b[i] << 8) | b[i + 1];
  if (len & 1) sum += b[off + len - 1] << 8;
  return sum;
}

/** Folds a sum to 16 bits and complements it: the checksum field's value. */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The Internet checksum of b[off, off+len). Over data that includes a correct checksum it is 0. */
export function checksum(b: Uint8Array, off: number, len: number): number {
  return fold(sum16(b, off, len));
}

const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
const put16 = (b: Uint8Array, o: number, v: number) => {
  b[o] = v >>> 8;
  b[o + 1] = v;
};
const put32 = (b: Uint8Array, o: number, v: number) => {
  put16(b, o, v >>> 16);
  put16(b, o + 2, v);
};

/** Sum of the UDP pseudo-header (RFC 768) for the packet whose IPv4 header is at 0. */
const pseudo = (b: Uint8Array, len: number) => sum16(b, 12, 8) + UDP + len;

/** Sum of the ICMPv6 pseudo-header (RFC 8200 §8.1) for the packet whose IPv6 header is at 0. */
const pseudo6 = (b: Uint8Array, len: number) => sum16(b, 8, 32) + ICMP6 + len;

/** True when the 16 bytes at a[ao] and b[bo] are equal. */
function same16(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** What happened to every packet given to input(), and to every packet sent. */
export interface IpStats {
  received: number;
  /** Echo replies sent. */
  echoReplies: number;
  /** UDP datagrams delivered to onUdp / sent with udp(). */
  udpIn: number;
  udpOut: number;
  /** Dropped: not a well-formed IPv4 packet (too short, bad version, IHL or lengths). */
  malformed: number;
  /** Dropped: IP header, ICMP or UDP checksum wrong. */
  badChecksum: number;
  /** Dropped: a fragment (we never reassemble). */
  fragment: number;
  /** Dropped: not addressed to our address (or we have none yet). */
  notForUs: number;
  /** Dropped: another protocol, another ICMP type, or UDP with no handler. */
  unsupported: number;
  /** Packets we built that the link refused (not connected, or its buffer full). */
  sendFailed: number;
}

/** A received datagram. `payload` is valid only during the call, as with Tun.write. */
export type UdpHandler = (src: number, srcPort: number, dstPort: number, payload: Uint8Array) => void;

export class IpStack {
  // Fields are declared and assigned in the constructor, which minifies to plain
  // assignments (class field initializers would pull in a defineProperty helper).
  /** Our address as a number; 0 until the VPN assigns one. Packets to any other are dropped. */
  declare address: number;
  /** Our IPv6 address (16 bytes) when the VPN gave one, else null: IPv6 is then not for us. */
  declare address6: Uint8Array | null;
  declare readonly stats: IpStats;
  /** Receives UDP datagrams addressed to us; without it they are dropped as unsupported. */
  declare onUdp?: UdpHandler;
  private declare readonly send: (packet: Uint8Array) => boolean;
  private declare id: number;

  /**
   * `send` puts one finished packet on the link (Client.send) and returns false when it was
   * dropped. Every packet passed to it is a fresh buffer, so the link may keep it.
   */
  constructor(send: (packet: Uint8Array) => boolean, onUdp?: UdpHandler) {
    this.send = send;
    this.onUdp = onUdp;
    this.address = 0;
    this.address6 = null;
    this.id = 0;
    this.stats = { received: 0, echoReplies: 0, udpIn: 0, udpOut: 0, malformed: 0, badChecksum: 0, fragment: 0, notForUs: 0, unsupported: 0, sendFailed: 0 };
  }

  /** One packet from the VPN (Tun.write). Never throws; bad input is counted and dropped. */
  input(p: Uint8Array): void {
    const s = this.stats;
    s.received++;
    const n = p.length;
    if (p[0] >> 4 === 6) return this.input6(p);
    const hl = (p[0] & 15) * 4;
    const total = n < 20 ? 0 : (p[2] << 8) | p[3];
    if (n < 20 || p[0] >> 4 !== 4 || hl < 20 || total < hl || total > n) return void s.malformed++;
    if (checksum(p, 0, hl) !== 0) return void s.badChecksum++;
    if ((p[6] & 0x3f) | p[7]) return void s.fragment++; // more-fragments or an offset
    if (!this.address || u32(p, 16) !== this.address) return void s.notForUs++;
    const len = total - hl;
    const src = u32(p, 12);
    if (p[9] === ICMP) {
      if (len < 8) return void s.malformed++;
      if (checksum(p, hl, len) !== 0) return void s.badChecksum++;
      if (p[hl] !== 8 || p[hl + 1] !== 0) return void s.unsupported++; // echo request only
      // The reply carries the request's identifier, sequence number and data unchanged.
      const r = this.packet(ICMP, src, len);
      r.set(p.subarray(hl, total), 20);
      r[20] = 0; // type 0: echo reply
      r[22] = r[23] = 0;
      put16(r, 22, checksum(r, 20, len));
      if (this.out(r)) s.echoReplies++;
    } else if (p[9] === UDP) {
      const ulen = len < 8 ? 0 : (p[hl + 4] << 8) | p[hl + 5];
      if (ulen < 8 || ulen > len) return void s.malformed++;
      // Checksum 0 means the sender did not compute one (allowed over IPv4).
      if ((p[hl + 6] | p[hl + 7]) && fold(sum16(p, hl, ulen, pseudo(p, ulen))) !== 0) return void s.badChecksum++;
      if (!this.onUdp) return void s.unsupported++;
      s.udpIn++;
      this.onUdp(src, (p[hl] << 8) | p[hl + 1], (p[hl + 2] << 8) | p[hl + 3], p.subarray(hl + 8, hl + ulen));
    } else s.unsupported++;
  }

  /**
   * An IPv6 packet: ICMPv6 echo requests (ping -6) to our IPv6 address are answered; no
   * extension headers, no fragments, nothing else (counted as unsupported).
   */
  private input6(p: Uint8Array): void {
    const s = this.stats;
    const n = p.length;
    const len = n < 40 ? -1 : (p[4] << 8) | p[5];
    if (len < 0 || 40 + len > n) return void s.malformed++;
    const me = this.address6;
    if (me === null || !same16(p, 24, me, 0)) return void s.notForUs++;
    if (p[6] !== ICMP6) return void s.unsupported++;
    if (len < 8) return void s.malformed++;
    if (fold(sum16(p, 40, len, pseudo6(p, len))) !== 0) return void s.badChecksum++;
    if (p[40] !== 128 || p[41] !== 0) return void s.unsupported++; // echo request only
    // The reply: addresses swapped, type 129, the request's identifier, sequence and data.
    const r = new Uint8Array(40 + len);
    r[0] = 0x60;
    put16(r, 4, len);
    r[6] = ICMP6;
    r[7] = 64; // hop limit
    r.set(me, 8);
    r.set(p.subarray(8, 24), 24);
    r.set(p.subarray(40, 40 + len), 40);
    r[40] = 129;
    r[42] = r[43] = 0;
    put16(r, 42, fold(sum16(r, 40, len, pseudo6(r, len))));
    if (this.out(r)) s.echoReplies++;
  }

  /** Sends one UDP datagram from our address. False when the link dropped it. */
  udp(dst: number, srcPort: number, dstPort: number, payload: Uint8Array): boolean {
    const ulen = 8 + payload.length;
    const b = this.packet(UDP, dst, ulen);
    put16(b, 20, srcPort);
    put16(b, 22, dstPort);
    put16(b, 24, ulen);
    b.set(payload, 28);
    // A computed 0 goes out as 0xffff: 0 would mean "no checksum".
    put16(b, 26, fold(sum16(b, 20, ulen, pseudo(b, ulen))) || 0xffff);
    return this.out(b) && ++this.stats.udpOut > 0;
  }

  /** A new packet with a finished 20-byte header from us to `dst`; the payload is left to fill. */
  private packet(proto: number, dst: number, len: number): Uint8Array {
    const b = new Uint8Array(20 + len);
    b[0] = 0x45;
    put16(b, 2, 20 + len);
    put16(b, 4, (this.id = (this.id + 1) & 0xffff));
    b[6] = 0x40; // don't fragment
    b[8] = 64; // TTL
    b[9] = proto;
    put32(b, 12, this.address);
    put32(b, 16, dst);
    put16(b, 10, checksum(b, 0, 20));
    return b;
  }

  private out(b: Uint8Array): boolean {
    if (this.send(b)) return true;
    this.stats.sendFailed++;
    return false;
  }
}
