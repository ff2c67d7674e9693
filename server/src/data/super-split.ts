// A KIND_SUPER frame for a port that does not take them (a seed client, an SDK device, a
// tun without offloads): its super-packet cut into segments, as the sender's kernel would
// have sent them, into a buffer of their own (a session may queue views of it in its socket).

import { SUPER_HEADER } from '../../../protocol/index.js';
import { superGsoSize } from '../../../common/offload/super.js';
import { type Segments, splitSize, splitTcp4, tcp4Headers } from '../../../common/offload/split.js';

const seg: Segments = { offsets: new Uint32Array(2048), lengths: new Uint32Array(2048) };

/** The segments of the frame buf[off, off + len), or null when it holds no TCP/IPv4 super-packet. */
export function splitSuperFrame(buf: Uint8Array, off: number, len: number): { data: Uint8Array; count: number; offsets: Uint32Array; lengths: Uint32Array } | null {
  const p = off + SUPER_HEADER;
  const n = len - SUPER_HEADER;
  const gso = superGsoSize(buf, off);
  const hdrs = tcp4Headers(buf, p, n);
  if (hdrs < 0 || gso === 0) return null;
  const data = new Uint8Array(splitSize(n, hdrs, gso));
  const count = splitTcp4(buf, p, n, gso, data, 0, seg, 0);
  return count > 0 ? { data, count, offsets: seg.offsets, lengths: seg.lengths } : null;
}
