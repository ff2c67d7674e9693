// The server's own tun device as a port of the switch: packets nobody on the VPN owns go to
// it for Linux to route, and packets Linux routes into it are switched to their client.

import { DST, HEADER6, MAX_FRAME, SUPER_HEADER, readU32 } from '../../../protocol/index.js';
import { isSuperFrame, superGsoSize } from '../../../common/offload/super.js';
import { Coalescer, type VnetSink } from '../../../common/offload/coalesce.js';
import type { Metrics } from '../metrics/metrics.js';
import type { FrameParts, PacketSink, Port } from './port.js';
import type { Switch } from './switch.js';

/** The part of a TUN device the server uses (linux/tun.ts's TunDevice is one). */
export interface ServerTun extends PacketSink {
  readonly name: string;
  /**
   * Writes buf[off, off + len) into the kernel; false when it was dropped: the device was
   * full, or the kernel refused the packet (EINVAL: not a packet it can parse), which a
   * device with `stats` counts in txRejected. Any other error is thrown.
   */
  write(buf: Uint8Array, off: number, len: number): boolean;
  /** Tells a refused packet from a full device; without it every false counts as full. */
  readonly stats?: { readonly txRejected: number };
  /**
   * The device has TUN offloads (linux/tun.ts with `offload`): what it reads is already split
   * into packets, and it takes TCP super-packets behind a virtio-net header (writeVnet).
   */
  readonly offload?: boolean;
  /** Why offloads are off although they were asked for. */
  readonly offloadError?: string;
  writeVnet?(hdr: Uint8Array, buf: Uint8Array, off: number, len: number): boolean;
  /**
   * One packet in two parts, a[aOff, +aLen) then b[bOff, +bLen), in one write: behind `hdr`
   * with offloads (null: a zero header). Returns and throws as write() does.
   */
  writeParts?(hdr: Uint8Array | null, a: Uint8Array, aOff: number, aLen: number, b: Uint8Array, bOff: number, bLen: number): boolean;
  /** With offloads: reads hand TCP super-packets over whole, as KIND_SUPER frames. */
  superFrames?: boolean;
  close(): void;
}

/**
 * Opens the server's tun: named `name` (a kernel pattern such as svpn%d), with the server's
 * own address, the subnet's prefix and the MTU (and with --subnet6 its IPv6 address and prefix); `onPackets` gets what Linux routes into it,
 * packets[0, count) (the array may be reused between calls; each view stays valid);
 * `onError` hears of a device that can no longer be read (deleted under the server, say).
 */
export type OpenTun = (
  name: string,
  config: { address: string; prefix: number; mtu: number; ipv6?: { address: string; prefix: number } },
  onPackets: (packets: Uint8Array[], count: number) => void,
  onError: (err: Error) => void,
) => Promise<ServerTun>;

export class TunPort implements Port {
  /** The kernel takes one packet per write (a super-packet counts as one, made by `gro` below). */
  readonly coalesce = false;
  /**
   * No limit below IPv4's: the kernel takes any packet a client can send, and fragments or
   * refuses on its own when it routes the packet on.
   */
  readonly mtu = MAX_FRAME;
  /** txRejected of the device as last seen. */
  private rejected = 0;
  /**
   * With offloads: TCP segments of one flow, switched in one chunk, go to the kernel as one
   * super-packet (GRO in user space). The port corks while it holds some; flush() writes them.
   */
  private readonly gro: Coalescer | null;
  private corked = false;
  /** With offloads, super-packets from clients that send them go to the kernel whole. */
  readonly superPackets: boolean;
  /** A frame in two parts joined, for the coalescer (which copies what it keeps): made once, when first needed. */
  private scratch: Uint8Array | null = null;

  constructor(
    readonly device: ServerTun,
    private readonly sw: Switch,
    private readonly metrics: Metrics,
    /** The device failed (an error other than a full device or a refused packet): called once. */
    private readonly onFailure: (err: Error) => void,
  ) {
    const dev = device;
    if (dev.offload && dev.writeVnet) {
      const sink: VnetSink = {
        write: (b, o, n) => this.writeNow(b, o, n, null),
        writeVnet: (h, b, o, n) => this.writeNow(b, o, n, h),
        writeVnetParts: (h, a, ao, an, b, bo, bn) => this.writeNow(a, ao, an, h, b, bo, bn),
      };
      this.gro = new Coalescer(sink);
    } else this.gro = null;
    this.superPackets = this.gro !== null;
  }

  /**
   * A KIND_SUPER frame: its super-packet to the kernel whole (after what is held of its flow).
   * With `tail`, the frame is in two parts (see writeParts).
   */
  writeSuper(buf: Uint8Array, off: number, len: number, tail?: Uint8Array, tailOff = 0, tailLen = 0): boolean {
    const gro = this.gro!;
    const malformed = gro.stats.malformed;
    const ok = gro.pushSuper(buf, off + SUPER_HEADER, len - SUPER_HEADER, superGsoSize(buf, off), tail, tailOff, tailLen);
    if (gro.stats.malformed !== malformed) this.metrics.drops.tun_rejected++;
    return ok;
  }

  /**
   * A frame in two parts (it spanned two reads of its client's socket; its headers are whole
   * in the first): a super-packet, or a packet for a device without offloads, goes to the
   * kernel in one writev of its parts; a packet for the coalescer (or any, on a device that
   * cannot write parts) is joined in the port's scratch buffer: the coalescer copies what it
   * holds and writes the rest at once, so nothing keeps the scratch past the call.
   */
  writeParts(p: FrameParts, superFrame: boolean): boolean {
    const k = p.split;
    const rest = p.length - k;
    if (this.device.writeParts !== undefined) {
      if (superFrame) return this.writeSuper(p.buf, p.start, p.length, p.tail, p.tailStart, rest);
      if (this.gro === null) return this.writeNow(p.buf, p.start, k, null, p.tail, p.tailStart, rest);
    }
    const s = (this.scratch ??= new Uint8Array(MAX_FRAME));
    s.set(p.buf.subarray(p.start, p.start + k));
    s.set(p.tail.subarray(p.tailStart, p.tailStart + rest), k);
    return superFrame ? this.writeSuper(s, 0, p.length) : this.write(s, 0, p.length);
  }

  write(buf: Uint8Array, off: number, len: number): boolean {
    const gro = this.gro;
    if (gro === null) return this.writeNow(buf, off, len, null);
    if (!this.corked) {
      this.corked = true;
      this.sw.corked(this);
    }
    return gro.push(buf, off, len);
  }

  /**
   * One write to the device, counted: behind the virtio-net header `hdr` when there is one;
   * with `tail`, of a packet in two parts, buf[off, off + len) then tail[tailOff, +tailLen).
   */
  private writeNow(buf: Uint8Array, off: number, len: number, hdr: Uint8Array | null, tail?: Uint8Array, tailOff = 0, tailLen = 0): boolean {
    const m = this.metrics;
    const dev = this.device;
    let written: boolean;
    try {
      if (tail !== undefined) written = dev.writeParts!(hdr, buf, off, len, tail, tailOff, tailLen);
      else written = hdr === null ? dev.write(buf, off, len) : dev.writeVnet!(hdr, buf, off, len);
    } catch (err) {
      // EBADF, EIO: the device is gone, not this packet. The server takes the port out of the
      // switch; until it has, what comes is dropped as no_route.
      m.drops.no_route++;
      this.onFailure(err as Error);
      return false;
    }
    if (written) {
      m.tunTxPackets++;
      return true;
    }
    const rejected = this.device.stats?.txRejected ?? this.rejected;
    if (rejected !== this.rejected) {
      m.drops.tun_rejected += rejected - this.rejected;
      this.rejected = rejected;
    } else {
      m.drops.tun_full++;
    }
    return false;
  }

  /** Whole frames back to back (fragments): one write each. */
  deliver(data: Uint8Array, packets: number): boolean {
    let ok = true;
    for (let at = 0, i = 0; i < packets && at + 4 <= data.length; i++) {
      const len = (data[at + 2] << 8) | data[at + 3];
      ok = this.write(data, at, len) && ok;
      at += len;
    }
    return ok;
  }

  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.gro!.flush();
  }

  /**
   * What the native hub did with the device since it last asked (native-sessions.ts): packets
   * read and sent on, written, dropped because the device was full, refused.
   */
  countNative(c: Float64Array): void {
    const m = this.metrics;
    m.tunRxPackets += c[0];
    m.tunTxPackets += c[1];
    m.drops.tun_full += c[2];
    m.drops.tun_rejected += c[3];
  }

  /** Packets Linux routed into the tun: to the client that owns the destination. */
  receive(packets: Uint8Array[], count: number): void {
    const m = this.metrics;
    const sw = this.sw;
    for (let i = 0; i < count; i++) {
      const p = packets[i];
      m.tunRxPackets++;
      const v = p[0] >> 4;
      if (v === 4 && p.length >= 20) {
        if (isSuperFrame(p, 0, p.length)) sw.routeSuper(this, p, 0, p.length, readU32(p, DST));
        else sw.route(this, p, 0, p.length, readU32(p, DST));
      } else if (v === 6 && p.length >= HEADER6) sw.route6(this, p, 0, p.length);
      else m.drops.not_ipv4++;
    }
    sw.flush();
  }
}
