// The virtio-net header a tun device opened with IFF_VNET_HDR puts before every packet it
// reads and expects before every packet written to it, and the Internet checksum that
// segmentation and coalescing recompute. Runtime-neutral: the server's tun port and the
// Linux client both use it (through split.ts and coalesce.ts).
//
// struct virtio_net_hdr (10 bytes, little-endian on every host this runs on):
//   u8 flags, u8 gso_type, u16 hdr_len, u16 gso_size, u16 csum_start, u16 csum_offset

export const VNET_HDR_LEN = 10;

/** flags: the checksum at csum_start + csum_offset holds only the pseudo-header sum. */
export const VNET_F_NEEDS_CSUM = 1;

/** gso_type values. */
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;
export const GSO_TCPV6 = 4;
/** Or'ed into gso_type: the packet had CWR set and the segments must carry it as TCP does. */
export const GSO_ECN = 0x80;

export const IPPROTO_TCP = 6;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_CWR = 0x80;

export interface VnetHeader {
  flags: number;
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

const u16le = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
function putU16le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >> 8;
}

/** Reads the header at b[o]; into `h` (reused by the caller: nothing allocated). */
export function readVnet(b: Uint8Array, o: number, h: VnetHeader): VnetHeader {
  h.flags = b[o];
  h.gsoType = b[o + 1];
  h.hdrLen = u16le(b, o + 2);
  h.gsoSize = u16le(b, o + 4);
  h.csumStart = u16le(b, o + 6);
  h.csumOffset = u16le(b, o + 8);
  return h;
}

export function writeVnet(b: Uint8Array, o: number, flags: number, gsoType: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number): void {
  b[o] = flags;
  b[o + 1] = gsoType;
  putU16le(b, o + 2, hdrLen);
  putU16le(b, o + 4, gsoSize);
  putU16le(b, o + 6, csumStart);
  putU16le(b, o + 8, csumOffset);
}

// One DataView, remade only when the sum is over another buffer: reading 32 bits at a
// time takes half the time of reading bytes, and a view per call would allocate per packet.
let view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
let viewOf: Uint8Array = new Uint8Array(0);

/**
 * The one's-complement sum of b[from, to) as big-endian 16-bit words, added to `sum`,
 * not folded (a double holds the sum of any packet exactly). An odd last byte is padded.
 */
export function sum16(b: Uint8Array, from: number, to: number, sum: number): number {
  if (b !== viewOf) {
    view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    viewOf = b;
  }
  const v = view;
  let i = from;
  for (const end = to - 3; i < end; i += 4) {
    const w = v.getUint32(i);
    sum += (w >>> 16) + (w & 0xffff);
  }
  if (i + 1 < to) {
    sum += (b[i] << 8) | b[i + 1];
    i += 2;
  }
  if (i < to) sum += b[i] << 8;
  return sum;
}

/** Folds a sum to 16 bits (not complemented). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** The IPv4 pseudo-header's sum: addresses of the IPv4 header at b[ip], protocol, length. */
export function pseudo4(b: Uint8Array, ip: number, proto: number, length: number): number {
  return sum16(b, ip + 12, ip + 20, proto + length);
}

/** Writes the IPv4 header checksum of the header at b[ip] (ihl bytes). */
export function ipv4Checksum(b: Uint8Array, ip: number, ihl: number): void {
  b[ip + 10] = 0;
  b[ip + 11] = 0;
  const c = ~fold(sum16(b, ip, ip + ihl, 0)) & 0xffff;
  b[ip + 10] = c >> 8;
  b[ip + 11] = c;
}

/**
 * Completes a partial checksum (NEEDS_CSUM): the field at start + offset holds the
 * pseudo-header sum; the checksum is the complement of the sum from `start` to `end`.
 * Works for TCP and UDP over IPv4 and IPv6 alike. False when the field lies outside.
 */
export function completeChecksum(b: Uint8Array, start: number, offset: number, end: number): boolean {
  const at = start + offset;
  if (at + 2 > end || start >= end) return false;
  let c = ~fold(sum16(b, start, end, 0)) & 0xffff;
  // UDP sends a computed 0 as 0xffff (0 means "no checksum"); for TCP 0 and 0xffff are the same value.
  if (c === 0 && offset === 6) c = 0xffff;
  b[at] = c >> 8;
  b[at + 1] = c;
  return true;
}
