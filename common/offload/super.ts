// KIND_SUPER frames: a TCP/IPv4 super-packet carried whole through the tunnel between
// endpoints that both declared T_OFFLOAD (PROTOCOL.md). The frame is an extension message
// whose source and destination are the super-packet's own (so that the server switches and
// checks it as it does any packet), then gso_size, then the super-packet. The
// super-packet's own checksums are not meaningful on the wire: whoever splits it or hands
// it to a kernel computes them.

import { DST, KIND_SUPER, PROTO_EXT, SRC, SUPER_HEADER, EXT_VERSION } from '../../protocol/index.js';

/** The largest super-packet a frame carries (its IPv4 total length stays within 65535). */
export const MAX_SUPER = 65535 - SUPER_HEADER;

/** Whether b[o, o + len) is a KIND_SUPER frame with room for a packet. */
export function isSuperFrame(b: Uint8Array, o: number, len: number): boolean {
  return len > SUPER_HEADER + 40 && b[o + 9] === PROTO_EXT && b[o + 20] === 0x53 && b[o + 21] === 0x56 && b[o + 22] === KIND_SUPER;
}

/** The gso_size of a KIND_SUPER frame. */
export function superGsoSize(b: Uint8Array, o: number): number {
  return (b[o + 24] << 8) | b[o + 25];
}

/**
 * Writes the frame header for a super-packet of `len` bytes that the caller puts (or has
 * put) at out[at + SUPER_HEADER]; its addresses are copied from it. Returns the frame's length.
 */
export function writeSuperHeader(out: Uint8Array, at: number, len: number, gsoSize: number): number {
  const total = SUPER_HEADER + len;
  const p = at + SUPER_HEADER;
  // The header every extension message has (protocol/control.ts's controlMessage).
  out[at] = 0x45;
  out[at + 1] = 0x14;
  out[at + 2] = total >> 8;
  out[at + 3] = total;
  out[at + 4] = out[at + 5] = out[at + 6] = out[at + 7] = 0;
  out[at + 8] = 0x40;
  out[at + 9] = PROTO_EXT;
  out[at + 10] = out[at + 11] = 0; // like every extension message: no header checksum
  out.copyWithin(at + SRC, p + SRC, p + SRC + 4);
  out.copyWithin(at + DST, p + DST, p + DST + 4);
  out[at + 20] = 0x53;
  out[at + 21] = 0x56;
  out[at + 22] = KIND_SUPER;
  out[at + 23] = EXT_VERSION;
  out[at + 24] = gsoSize >> 8;
  out[at + 25] = gsoSize;
  return total;
}
