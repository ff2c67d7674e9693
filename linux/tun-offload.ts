// The read side of a tun opened with offloads (IFF_VNET_HDR, TSO): every packet of a batch
// comes behind a virtio-net header; a TCP super-packet is split into segments (GSO in user
// space) and a packet with a partial checksum has it completed, so that what the caller
// gets are packets as a plain tun would have read them. Or, when the far end takes them
// (`wrap`), a super-packet becomes one KIND_SUPER frame, untouched: no checksum computed.

import { SUPER_HEADER } from '../protocol/index.js';
import { MAX_SUPER, writeSuperHeader } from '../common/offload/super.js';
import { SPLIT_NO_ROOM, type Segments, splitSize, splitTcp4, tcp4Headers } from '../common/offload/split.js';
import { GSO_ECN, GSO_NONE, GSO_TCPV4, VNET_F_NEEDS_CSUM, VNET_HDR_LEN, type VnetHeader, completeChecksum, readVnet } from '../common/offload/vnet.js';

export interface OffloadStats {
  rxPackets: number;
  rxBytes: number;
  rxSuperPackets: number;
  rxUnsplittable: number;
}

const hdr: VnetHeader = { flags: 0, gsoType: 0, hdrLen: 0, gsoSize: 0, csumStart: 0, csumOffset: 0 };
// A 64 KiB super-packet of 48-byte segments (TCP's smallest MSS) has 1366: room for more.
const MAX_SEGMENTS = 2048;
const seg: Segments = { offsets: new Uint32Array(MAX_SEGMENTS), lengths: new Uint32Array(MAX_SEGMENTS) };
const EMPTY = new Uint8Array(0);

/**
 * The batch in `slab` (count entries of lengths[i] bytes, each a virtio-net header and a
 * packet) as packets in views[0, n); returns n. `views` grows when super-packets make more
 * packets than the batch had. Segments go into one buffer made for the batch (only when it
 * holds a super-packet), so that every view stays valid after the call, as on a plain tun.
 */
export function readOffloaded(slab: ArrayBuffer, lengths: Uint32Array, count: number, views: Uint8Array[], stats: OffloadStats, wrap: boolean): number {
  const bytes = new Uint8Array(slab);
  // First pass: how much room the segments (or frames) need.
  let extra = 0;
  for (let i = 0, at = 0; i < count; at += lengths[i++]) {
    if (lengths[i] < VNET_HDR_LEN || (bytes[at + 1] & ~GSO_ECN) !== GSO_TCPV4) continue;
    const len = lengths[i] - VNET_HDR_LEN;
    const hdrs = tcp4Headers(bytes, at + VNET_HDR_LEN, len);
    const gso = bytes[at + 4] | (bytes[at + 5] << 8);
    if (hdrs > 0 && gso > 0) extra += wrap && len <= MAX_SUPER ? SUPER_HEADER + len : splitSize(len, hdrs, gso);
  }
  const out = extra ? new Uint8Array(extra) : EMPTY;
  let n = 0;
  let outAt = 0;
  for (let i = 0, at = 0; i < count; at += lengths[i++]) {
    const total = lengths[i];
    if (total < VNET_HDR_LEN) {
      stats.rxUnsplittable++;
      continue;
    }
    readVnet(bytes, at, hdr);
    const p = at + VNET_HDR_LEN;
    const len = total - VNET_HDR_LEN;
    const type = hdr.gsoType & ~GSO_ECN;
    if (type === GSO_NONE) {
      if (hdr.flags & VNET_F_NEEDS_CSUM && !completeChecksum(bytes, p + hdr.csumStart, hdr.csumOffset, p + len)) {
        stats.rxUnsplittable++;
        continue;
      }
      put(views, n++, new Uint8Array(slab, p, len));
      stats.rxPackets++;
      stats.rxBytes += len;
      continue;
    }
    if (wrap && type === GSO_TCPV4 && len <= MAX_SUPER && hdr.gsoSize > 0 && tcp4Headers(bytes, p, len) > 0) {
      out.set(bytes.subarray(p, p + len), outAt + SUPER_HEADER);
      const size = writeSuperHeader(out, outAt, len, hdr.gsoSize);
      put(views, n++, out.subarray(outAt, outAt + size));
      outAt += size;
      stats.rxSuperPackets++;
      stats.rxPackets++;
      stats.rxBytes += size;
      continue;
    }
    const got = type === GSO_TCPV4 ? splitTcp4(bytes, p, len, hdr.gsoSize, out, outAt, seg, 0) : SPLIT_NO_ROOM;
    if (got <= 0) {
      stats.rxUnsplittable++;
      continue;
    }
    stats.rxSuperPackets++;
    for (let k = 0; k < got; k++) {
      const size = seg.lengths[k];
      put(views, n++, out.subarray(seg.offsets[k], seg.offsets[k] + size));
      stats.rxBytes += size;
      outAt = seg.offsets[k] + size;
    }
    stats.rxPackets += got;
  }
  return n;
}

function put(views: Uint8Array[], i: number, v: Uint8Array): void {
  if (i < views.length) views[i] = v;
  else views.push(v);
}
