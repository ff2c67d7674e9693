// The server's own tun device as a port of the switch: packets nobody on the VPN owns go to
// it for Linux to route, and packets Linux routes into it are switched to their client.

import { DST, HEADER6, MAX_FRAME, readU32 } from '../../../protocol/index.js';
import type { Metrics } from '../metrics/metrics.js';
import type { PacketSink, Port } from './port.js';
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
  /** The kernel takes one packet per write. */
  readonly coalesce = false;
  /**
   * No limit below IPv4's: the kernel takes any packet a client can send, and fragments or
   * refuses on its own when it routes the packet on.
   */
  readonly mtu = MAX_FRAME;
  /** txRejected of the device as last seen. */
  private rejected = 0;

  constructor(
    readonly device: ServerTun,
    private readonly sw: Switch,
    private readonly metrics: Metrics,
    /** The device failed (an error other than a full device or a refused packet): called once. */
    private readonly onFailure: (err: Error) => void,
  ) {}

  write(buf: Uint8Array, off: number, len: number): boolean {
    const m = this.metrics;
    let written: boolean;
    try {
      written = this.device.write(buf, off, len);
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

  flush(): void {}

  /** Packets Linux routed into the tun: to the client that owns the destination. */
  receive(packets: Uint8Array[], count: number): void {
    const m = this.metrics;
    const sw = this.sw;
    for (let i = 0; i < count; i++) {
      const p = packets[i];
      m.tunRxPackets++;
      const v = p[0] >> 4;
      if (v === 4 && p.length >= 20) sw.route(this, p, 0, p.length, readU32(p, DST));
      else if (v === 6 && p.length >= HEADER6) sw.route6(this, p, 0, p.length);
      else m.drops.not_ipv4++;
    }
    sw.flush();
  }
}
