// The switch: which port owns which VPN address, where everything else goes (the server's
// tun), what happens to a packet too big for its port, and the batching of writes. Every
// entry point (a client session, the server's tun, later peer servers) hands its packets to
// route(), one call per packet, and calls flush() at the end of each chunk or batch.
//
// Batching: frames that lie next to each other in the same buffer and go to the same
// coalescing port are merged into one view (a run), handed over when the run ends; ports
// cork their writes on the first delivery of a chunk and are uncorked together by flush(),
// so every frame of a chunk bound for the same client leaves in a single writev and nothing
// is held past the chunk. No allocation per packet but the view of a run (and the two views
// of a frame that spanned two reads of its sender's socket: routeParts()).

import type { Metrics } from '../metrics/metrics.js';
import type { FrameParts, Port } from './port.js';
import { datagramEnd, dontFragment, fragment, fragmentationNeeded } from './too-big.js';
import { splitSuperFrame } from './super-split.js';
import { mayAnswer6, packetTooBig6 } from './ipv6.js';
import { DST6, readU32, sameAddress6 } from '../../../protocol/index.js';

/** An IPv6 address bound to a port: the address kept whole, as the map's key is not. */
interface Binding6 {
  readonly port: Port;
  readonly address: Uint8Array;
}

/**
 * The key of an IPv6 address (16 bytes at b[o]) in the switch's IPv6 map: a number, so that
 * looking a destination up allocates nothing. The subnet is a /64; a client's address is
 * the prefix and its IPv4 address (bytes 8-11 zero), so its key is that IPv4 address; any
 * other interface id keys above 2^32. Two addresses may share a key: the binding keeps the
 * whole address, route6() compares it, and bind6() refuses the second.
 */
export function key6(b: Uint8Array, o: number): number {
  const hi = readU32(b, o + 8);
  const lo = readU32(b, o + 12);
  return hi === 0 ? lo : 0x100000000 + ((hi ^ lo) >>> 0);
}

const EMPTY = new Uint8Array(0);

export class Switch {
  private readonly owners = new Map<number, Port>();
  private readonly owners6 = new Map<number, Binding6>();
  /** The server's own IPv6 address (the source of its ICMPv6), or null without --subnet6. */
  gateway6: Uint8Array | null = null;
  private readonly corkedPorts: Port[] = [];
  /** Where packets no port owns go: the server's tun; null drops them (no_route). */
  private fallback: Port | null = null;
  // The current run: runBuf[runStart, runEnd), `runPackets` frames, all for `run`.
  private run: Port | null = null;
  private runBuf: Uint8Array = EMPTY;
  private runStart = 0;
  private runEnd = 0;
  private runPackets = 0;

  /** `gateway`, the server's own VPN address, is the source of its ICMP messages. */
  constructor(
    private readonly metrics: Metrics,
    private readonly gateway: number,
  ) {}

  /** Addresses bound to a port. */
  get size(): number {
    return this.owners.size;
  }

  lookup(address: number): Port | undefined {
    return this.owners.get(address);
  }

  /** Told of each address bound or released (the native hub keeps the same set: native-sessions.ts). */
  private watcher: ((address: number | Uint8Array, held: boolean) => void) | null = null;

  /** `w` hears of every address held now and of each one bound or released from now on. */
  watch(w: (address: number | Uint8Array, held: boolean) => void): void {
    this.watcher = w;
    for (const a of this.owners.keys()) w(a, true);
    for (const b of this.owners6.values()) w(b.address, true);
  }

  /** Claims an address for `port`; false when another port holds it. */
  bind(address: number, port: Port): boolean {
    const cur = this.owners.get(address);
    if (cur !== undefined && cur !== port) return false;
    this.owners.set(address, port);
    if (cur === undefined) this.watcher?.(address, true);
    return true;
  }

  /** Releases an address, only if `port` still holds it. */
  unbind(address: number, port: Port): void {
    if (this.owners.get(address) !== port) return;
    this.owners.delete(address);
    this.watcher?.(address, false);
  }

  /** Claims an IPv6 address (16 bytes, kept) for `port`; false when another port holds it or one sharing its key. */
  bind6(address: Uint8Array, port: Port): boolean {
    if (!this.canBind6(address, port)) return false;
    const k = key6(address, 0);
    const was = this.owners6.get(k);
    this.owners6.set(k, { port, address });
    if (was === undefined) this.watcher?.(address, true);
    return true;
  }

  /** Whether bind6(address, port) would succeed: nobody holds the address or its key, or `port` holds it. */
  canBind6(address: Uint8Array, port: Port): boolean {
    const cur = this.owners6.get(key6(address, 0));
    return cur === undefined || (cur.port === port && sameAddress6(cur.address, 0, address, 0));
  }

  /** Releases an IPv6 address, only if `port` still holds it. */
  unbind6(address: Uint8Array, port: Port): void {
    const k = key6(address, 0);
    const cur = this.owners6.get(k);
    if (cur === undefined || cur.port !== port || !sameAddress6(cur.address, 0, address, 0)) return;
    this.owners6.delete(k);
    this.watcher?.(cur.address, false);
  }

  /** The port holding the IPv6 address at b[o], if any. */
  lookup6(b: Uint8Array, o: number): Port | undefined {
    const e = this.owners6.get(key6(b, o));
    return e !== undefined && sameAddress6(e.address, 0, b, o) ? e.port : undefined;
  }

  /** Sets the port for destinations nobody holds (the server's tun), or none. */
  setFallback(port: Port | null): void {
    this.fallback = port;
  }

  /**
   * Switches the IPv4 packet buf[off, off + len) that `from` received: to the port owning its
   * destination `dst`, else to the fallback (never back to `from`), else it is dropped
   * (no_route). The caller checked that it is IPv4 and that `from` may send it, and read
   * `dst` from its header doing so (reading it once more here costs the hot path).
   */
  route(from: Port, buf: Uint8Array, off: number, len: number, dst: number): void {
    // Kept small, so that V8 inlines it into each entry's loop: the three common cases (the
    // next frame of a run, a packet for the tun, a packet from the tun) call no method of the
    // switch; the rest is in methods of their own.
    const to = this.owners.get(dst);
    if (to === undefined) {
      const f = this.fallback;
      if (f !== null && f !== from && len <= f.mtu) f.write(buf, off, len);
      else this.noOwner(from, buf, off, len);
    } else if (len > to.mtu) {
      this.tooBig(from, buf, off, len, to);
    } else if (to === this.run) {
      // Only a coalescing port has a run.
      if (off === this.runEnd && buf === this.runBuf) {
        this.runEnd = off + len;
        this.runPackets++;
      } else this.startRun(to, buf, off, len);
    } else if (!to.coalesce) {
      to.write(buf, off, len);
    } else if (off === 0 && len === buf.length) {
      // Alone in its buffer (a packet from the tun, a frame that straddled two chunks):
      // nothing can follow it there, so it leaves now.
      to.deliver(buf, 1);
    } else {
      this.startRun(to, buf, off, len);
    }
  }

  /**
   * A KIND_SUPER frame (a TCP super-packet whole) that `from` may send: whole to a port
   * that takes them, whatever its MTU (the far end splits it or its kernel does); else
   * split into its segments, each switched as a packet.
   */
  routeSuper(from: Port, buf: Uint8Array, off: number, len: number, dst: number): void {
    const f = this.fallback;
    const to = this.owners.get(dst) ?? (f !== from ? f : null);
    if (to === null) {
      this.metrics.drops.no_route++;
    } else if (to.superPackets) {
      if (this.run !== null) this.endRun(); // what was switched before it leaves before it
      to.writeSuper!(buf, off, len);
    } else {
      const s = splitSuperFrame(buf, off, len);
      if (s === null) this.metrics.drops.not_ipv4++;
      else for (let i = 0; i < s.count; i++) this.route(from, s.data, s.offsets[i], s.lengths[i], dst);
    }
  }

  /**
   * route(), or routeSuper() for a KIND_SUPER frame, of a frame that came in two parts (it
   * spanned two reads of its sender's socket): handed on in its parts to a port that takes
   * them and takes the frame as it is (within its MTU; a super-packet whole); joined, then
   * switched as any frame, when it must be fragmented, split, answered or dropped.
   */
  routeParts(from: Port, p: FrameParts, dst: number, superFrame: boolean): void {
    const f = this.fallback;
    const to = this.owners.get(dst) ?? (f !== from ? f : null);
    if (to !== null && to.writeParts !== undefined && (superFrame ? to.superPackets === true : p.length <= to.mtu)) {
      if (this.run !== null) this.endRun(); // what was switched before it leaves before it
      to.writeParts(p, superFrame);
    } else if (superFrame) this.routeSuper(from, p.joined(), 0, p.length, dst);
    else this.route(from, p.joined(), 0, p.length, dst);
  }

  /**
   * Switches the IPv6 packet buf[off, off + len) as route() does an IPv4 one (the caller
   * checked it), except that it is never fragmented: too big for where it goes, it is
   * dropped (too_big) and its sender gets ICMPv6 Packet Too Big. IPv4's hot path is route(),
   * untouched by IPv6.
   */
  route6(from: Port, buf: Uint8Array, off: number, len: number): void {
    const to = this.lookup6(buf, off + DST6);
    if (to === undefined) {
      const f = this.fallback;
      if (f === null || f === from) this.metrics.drops.no_route++;
      else if (len > f.mtu) this.tooBig6(from, buf, off, len, f);
      else f.write(buf, off, len);
    } else if (len > to.mtu) {
      this.tooBig6(from, buf, off, len, to);
    } else if (to === this.run && off === this.runEnd && buf === this.runBuf) {
      this.runEnd = off + len;
      this.runPackets++;
    } else if (!to.coalesce) {
      to.write(buf, off, len);
    } else {
      this.startRun(to, buf, off, len);
    }
  }

  private tooBig6(from: Port, b: Uint8Array, o: number, n: number, to: Port): void {
    if (this.run !== null) this.endRun();
    this.metrics.drops.too_big++;
    const g = this.gateway6;
    if (g === null || !mayAnswer6(b, o)) return;
    const icmp = packetTooBig6(b, o, n, to.mtu, g);
    from.write(icmp, 0, icmp.length);
  }

  /** Nobody owns the destination, and the fallback cannot take it as it is. */
  private noOwner(from: Port, buf: Uint8Array, off: number, len: number): void {
    const f = this.fallback;
    if (f === null || f === from) this.metrics.drops.no_route++;
    else this.tooBig(from, buf, off, len, f);
  }

  /** A frame for a coalescing port that does not extend the current run. */
  private startRun(to: Port, buf: Uint8Array, off: number, len: number): void {
    const r = this.run;
    if (r !== null) this.deliverRun(r);
    if (off === 0 && len === buf.length) {
      // Alone in its buffer, after what was pending for its port.
      this.run = null;
      this.runBuf = EMPTY;
      to.deliver(buf, 1);
      return;
    }
    this.run = to;
    // Mostly the same chunk as the last run's: a store of a young object into this old one
    // costs a write barrier, a compare does not.
    if (this.runBuf !== buf) this.runBuf = buf;
    this.runStart = off;
    this.runEnd = off + len;
    this.runPackets = 1;
  }

  /** A port that corked its writes while a chunk is switched: flush() uncorks it. */
  corked(port: Port): void {
    this.corkedPorts.push(port);
  }

  /** The end of a chunk or batch: hands over the last run, then flushes every corked port. */
  flush(): void {
    if (this.run !== null) this.endRun();
    const c = this.corkedPorts;
    for (let i = 0; i < c.length; i++) c[i].flush();
    c.length = 0;
  }

  /** Hands the current run over, and forgets it (and the chunk it is in). */
  private endRun(): void {
    this.deliverRun(this.run!);
    this.run = null;
    this.runBuf = EMPTY;
  }

  private deliverRun(port: Port): void {
    const b = this.runBuf;
    const s = this.runStart;
    const e = this.runEnd;
    port.deliver(s === 0 && e === b.length ? b : b.subarray(s, e), this.runPackets);
  }

  /**
   * A packet larger than `to` takes, as a router between links of different MTU handles it:
   * with Don't Fragment, dropped and answered with ICMP "fragmentation needed" to `from`;
   * without, fragmented.
   */
  private tooBig(from: Port, b: Uint8Array, o: number, n: number, to: Port): void {
    // What was switched before this packet leaves before what it turns into.
    if (this.run !== null) this.endRun();
    const m = this.metrics;
    if (dontFragment(b, o)) {
      m.drops.too_big++;
      const icmp = fragmentationNeeded(b, o, n, to.mtu, this.gateway);
      from.write(icmp, 0, icmp.length);
      return;
    }
    // Its fragments' offsets would wrap around (a malformed or hostile fragment): not sent on.
    if (datagramEnd(b, o, n) > 65535) {
      m.drops.fragment_overflow++;
      return;
    }
    const f = fragment(b, o, n, to.mtu);
    m.fragmented += f.count;
    if (to.coalesce) {
      to.deliver(f.data, f.count);
      return;
    }
    // One write per fragment: each IPv4 header gives its fragment's length.
    const d = f.data;
    for (let at = 0; at < d.length; ) {
      const len = (d[at + 2] << 8) | d[at + 3];
      to.write(d, at, len);
      at += len;
    }
  }
}
