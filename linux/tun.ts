// Linux TUN devices for the server's own interface and the Linux client, over the native
// binding in linux/native (built at npm install; optional, hence tunStatus()).
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readOffloaded } from './tun-offload.js';

export type TunStatusCode = 'ADDON_MISSING' | 'NO_DEVICE' | 'NO_PERMISSION' | 'UNSUPPORTED_PLATFORM';

/** Open and configure failures: `code` is an errno name (EPERM, EBUSY...) or a TunStatusCode. */
export class TunError extends Error {
  readonly code: string;
  /** The system call that failed, when one did. */
  readonly syscall?: string;
  constructor(code: string, message: string, syscall?: string) {
    super(message);
    this.name = 'TunError';
    this.code = code;
    if (syscall) this.syscall = syscall;
  }
}

export interface TunStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets write()/writeBatch() could not hand to the kernel because the device was full. */
  txDropped: number;
  /**
   * Packets the kernel refused (EINVAL: too short, or not a packet it can parse as IP).
   * write() and writeBatch() count them here and go on: a bad packet is that packet's
   * problem, not the device's.
   */
  txRejected: number;
  /** Super-packets read from a device with offloads, each split into segments (rxPackets counts the segments). */
  rxSuperPackets: number;
  /** Packets read that could not be handed on (a super-packet that is not TCP over IPv4, or malformed). */
  rxUnsplittable: number;
}

export interface TunOptions {
  /** Interface name, at most 15 bytes; a pattern like "svpn%d" lets the kernel number it. Default "svpn%d". */
  name?: string;
  /**
   * Packets read from the device, in `packets[0..count)`. The array is reused between calls
   * (entries past `count` are stale); each view stays valid after the call, as every batch
   * has its own buffer, so views may be kept or queued without copying.
   */
  onPackets: (packets: Uint8Array[], count: number) => void;
  /** Reading failed (e.g. the interface was deleted); reading has stopped. Default: throw. */
  onError?: (err: Error) => void;
  /**
   * Open with TUN offloads (IFF_VNET_HDR, checksum offload and TSO for IPv4): the kernel then
   * hands over TCP super-packets of up to 64 KiB in one read, which are split here
   * (onPackets still gets packets no larger than the MTU, with complete checksums), and
   * takes super-packets written with writeVnet() (common/offload/coalesce.ts makes them).
   * Where the kernel refuses, the device is opened without them: see `offload` and
   * `offloadError`. Default false.
   */
  offload?: boolean;
}

/** Counters of the attached socket (linux/native/splice.c), over every attachment. */
export interface NativePathStats {
  /** Frames sent to the server from the device, and their bytes. */
  txPackets: number;
  txBytes: number;
  /** Frames from the server written (or offered) to the device, and their bytes. */
  rxPackets: number;
  rxBytes: number;
  /** Keepalive echoes and server messages handed to JS. */
  rxControl: number;
  /** Packets the device was too full to take, or refused (as TunStats txDropped, txRejected). */
  tunDropped: number;
  tunRejected: number;
  /** Super-packets sent as KIND_SUPER frames, and KIND_SUPER frames written whole. */
  txSuper: number;
  rxSuper: number;
  /** Packets read from the device that could not be sent (malformed, or a super-packet that is not TCP over IPv4). */
  unsplittable: number;
  /** KIND_SUPER frames whose packet is not TCP over IPv4. */
  rxMalformed: number;
  /** Writes the socket took only part of (the rest waited, the device's reads paused). */
  socketFull: number;
  attaches: number;
  /** On a device with offloads: super-packets the coalescer (linux/native/gro.c) wrote, and the segments in them. */
  groSuper: number;
  groSegments: number;
}

/** What the attached socket tells JavaScript. */
export interface AttachHandlers {
  /** Keepalive echoes and server messages, whole frames; or bytes that are no frame (then reading has stopped). */
  onData(chunk: Uint8Array): void;
  /** Packets came from the socket (at most once a second): the link is alive. */
  onActivity(): void;
  /** sendRaw() took nothing earlier; there is room now. */
  onWritable(): void;
  /** The server ended the stream. */
  onEnd(): void;
  /** Reading or writing the socket failed (.code is the errno name). */
  onError(err: Error): void;
  /** Writing to the device failed (deleted under us). */
  onTunError(err: Error): void;
}

export interface TunConfig {
  address: string;
  prefix: number;
  mtu?: number;
}

export interface TunDevice {
  /** The actual interface name (the kernel's choice when a %d pattern was given). */
  readonly name: string;
  /** Sets address and netmask (the kernel adds the route for the subnet), the MTU, and brings the device up. */
  configure(c: TunConfig): void;
  setMtu(mtu: number): void;
  /** A route to network/prefix through this device, no gateway. Needs the device up (configure()). */
  addRoute(network: string, prefix: number): void;
  deleteRoute(network: string, prefix: number): void;
  /**
   * Sends one IP packet into the kernel: buf[offset, offset + length), all of buf by
   * default. False when the packet was dropped, and counted: the device was full
   * (txDropped) or the kernel refused the packet (txRejected). Any other failure (the
   * device closed or gone: EBADF, EIO...) is thrown as a TunError.
   */
  write(buf: Uint8Array, offset?: number, length?: number): boolean;
  /**
   * Writes packets[0..count) in one native call and returns how many were written: on the
   * first the device has no room for it stops, and the rest count as dropped (txDropped).
   * A packet the kernel refuses is counted (txRejected) and skipped. Other failures are
   * thrown, as by write().
   */
  writeBatch(packets: Uint8Array[], count: number): number;
  /** Whether the device has offloads on (asked for, and the kernel agreed). */
  readonly offload: boolean;
  /** Why offloads were asked for and are off: the ioctl and the kernel's error. */
  readonly offloadError?: string;
  /**
   * With offloads: hand TCP super-packets to onPackets whole, each as a KIND_SUPER frame
   * (common/offload/super.ts), instead of split; for a far end that declared it takes them.
   */
  superFrames: boolean;
  /**
   * Writes buf[offset, offset + length) behind the 10-byte virtio-net header `hdr` (a
   * super-packet for the kernel to take whole): only on a device with `offload`. Returns
   * and counts as write() does.
   */
  writeVnet(hdr: Uint8Array, buf: Uint8Array, offset: number, length: number): boolean;
  /**
   * Writes one packet given in two parts, a[aOffset, +aLength) then b[bOffset, +bLength), in
   * one writev(2); behind `hdr` on a device with offloads (null: a zero header; null without).
   * Returns and counts as write() does.
   */
  writeParts(hdr: Uint8Array | null, a: Uint8Array, aOffset: number, aLength: number, b: Uint8Array, bOffset: number, bLength: number): boolean;
  /** Live counters (the same object every time). */
  readonly stats: TunStats;
  /** Stops reading and closes the device. Idempotent; may be called from onPackets. */
  close(): void;
  /** Whether the open device keeps the process alive (the default) or not, as for sockets. */
  ref(): void;
  unref(): void;
  /**
   * Stops reading until resume(), for when what is read could not be sent on: packets then
   * wait in the kernel's queue for the device (its txqueuelen, 4,096 packets), which drops
   * only past that (tx_dropped). May be called from onPackets. A paused device does not
   * keep the process alive.
   */
  pause(): void;
  /** Reads again after pause(). Nothing when not paused, closed, or failed. */
  resume(): void;
  /**
   * Moves the packets between this device and the connected TCP socket `fd` in C
   * (linux/native/splice.c) until detach(): frames from the socket go to the device, the
   * device's batches to the socket, and onPackets is not called meanwhile. `initial`: the
   * start of an unfinished frame already read from the socket. `superFrames`: the device's
   * TCP super-packets go out as KIND_SUPER frames (with offloads, for a server that takes them).
   * The caller stops its own reads and writes on the socket first.
   */
  attach(fd: number, initial: Uint8Array, superFrames: boolean, handlers: AttachHandlers): void;
  /** Ends the attachment (its duplicate of the socket is closed); onPackets gets the reads again. */
  detach(): void;
  /** Bytes for the attached socket, sent after whatever waits: returns all of them taken, or 0 (then onWritable). */
  sendRaw(buf: Uint8Array): number;
  nativeStats(): NativePathStats;
}

type Handle = object;
interface NativeError extends Error {
  code?: string;
  syscall?: string;
  written?: number;
}
interface Native {
  MAX_BATCH: number;
  open(
    name: string,
    onRead: (slab: ArrayBuffer | null, count: number, err?: NativeError) => void,
    offload: boolean,
  ): { handle: Handle; name: string; lengths: Uint32Array; offload: boolean; offloadError?: string };
  configure(h: Handle, address: string, prefix: number, mtu: number): void;
  setMtu(h: Handle, mtu: number): void;
  addRoute(h: Handle, network: string, prefix: number): void;
  deleteRoute(h: Handle, network: string, prefix: number): void;
  write(h: Handle, buf: Uint8Array, offset: number, length: number): boolean;
  writeVnet(h: Handle, hdr: Uint8Array, buf: Uint8Array, offset: number, length: number): boolean;
  writeBatch(h: Handle, packets: Uint8Array[], count: number): number;
  writeParts(h: Handle, hdr: Uint8Array | null, a: Uint8Array, ao: number, an: number, b: Uint8Array, bo: number, bn: number): boolean;
  close(h: Handle): void;
  ref(h: Handle): void;
  unref(h: Handle): void;
  pause(h: Handle): void;
  resume(h: Handle): void;
  attach(h: Handle, fd: number, initial: Uint8Array, superFrames: boolean, onEvent: (kind: number, arg?: ArrayBuffer | NativeError) => void): void;
  detach(h: Handle): void;
  sendRaw(h: Handle, buf: Uint8Array): number;
  nativeStats(h: Handle): NativePathStats;
}

const ADDON = 'linux/native/build/Release/simplevpn_tun.node';
const REBUILD = 'install python3, make and a C compiler, then run `npm rebuild simplevpn` (or `node linux/native/install.mjs` in a checkout)';

// This module runs from dist/js/linux/, bundled into dist/bin/, or from an installed
// package, so the addon is found from the package root rather than a relative path.
function packageRoot(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'simplevpn') return dir;
    } catch {}
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

let native: Native | TunError | undefined;

/** The native binding, or why it cannot be loaded (also linux/server-hub.ts's). */
export function load(): Native | TunError {
  if (native) return native;
  if (process.platform !== 'linux') {
    return (native = new TunError(
      'UNSUPPORTED_PLATFORM',
      `TUN devices are only supported on Linux, not on ${process.platform}: run the Linux client, or a server that needs its own TUN interface, on Linux (a server without one still switches traffic between clients).`,
    ));
  }
  const override = process.env.SIMPLEVPN_TUN_ADDON;
  const root = override ? null : packageRoot();
  if (!override && !root) {
    const from = dirname(fileURLToPath(import.meta.url));
    return (native = new TunError('ADDON_MISSING', `The native TUN binding cannot be located: no package.json named "simplevpn" above ${from}. Set SIMPLEVPN_TUN_ADDON to the path of simplevpn_tun.node.`));
  }
  const path = override || join(root!, ADDON);
  try {
    native = createRequire(import.meta.url)(path) as Native;
  } catch (e) {
    const why = (e as Error).message.split('\n')[0];
    if (override) {
      native = new TunError('ADDON_MISSING', `The native TUN binding could not be loaded from SIMPLEVPN_TUN_ADDON=${path} (${why}): point it at a built simplevpn_tun.node, or unset it.`);
    } else if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      native = new TunError('ADDON_MISSING', `The native TUN binding is not built (${path} does not exist): ${REBUILD}.`);
    } else {
      native = new TunError('ADDON_MISSING', `The native TUN binding at ${path} could not be loaded (${why}): rebuild it for this system: ${REBUILD}.`);
    }
  }
  return native;
}

const CAP_NET_ADMIN = 12;
const NEEDS_CAP =
  'Creating and configuring a TUN device needs CAP_NET_ADMIN: run as root, or grant the capability ' +
  '(e.g. `setcap cap_net_admin+ep "$(command -v node)"`, or AmbientCapabilities=CAP_NET_ADMIN in a systemd unit).';
const NO_DEVICE =
  'Load the tun kernel module (`modprobe tun`) or, in a container, expose the device ' +
  '(e.g. `docker run --device /dev/net/tun --cap-add NET_ADMIN`).';

function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (!m) return true;
    return ((BigInt('0x' + m[1]) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n;
  } catch {
    return true; // no /proc: let open() report the real error
  }
}

/** Whether openTun() can work here, and if not, a sentence an operator can act on. */
export function tunStatus(): { ok: true } | { ok: false; code: string; reason: string } {
  const n = load();
  if (n instanceof TunError) return { ok: false, code: n.code, reason: n.message };
  // Opening the clone device alone creates no interface, yet catches a missing node, a
  // missing module (ENODEV) and a device cgroup or file mode that denies it.
  try {
    closeSync(openSync('/dev/net/tun', 'r+'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      return { ok: false, code: 'NO_PERMISSION', reason: `/dev/net/tun cannot be opened (${code}): check its mode and, in a container, the device cgroup. ${NEEDS_CAP}` };
    }
    return { ok: false, code: 'NO_DEVICE', reason: `/dev/net/tun cannot be opened (${code}). ${NO_DEVICE}` };
  }
  if (!hasNetAdmin()) return { ok: false, code: 'NO_PERMISSION', reason: `This process lacks CAP_NET_ADMIN. ${NEEDS_CAP}` };
  return { ok: true };
}

// The native message names the device and the operation; this adds what to do about it.
function toTunError(e: unknown): unknown {
  const n = e as NativeError;
  if (!(n instanceof Error) || typeof n.code !== 'string' || n.code.startsWith('ERR_')) return e;
  const sys = n.syscall ?? '';
  let hint = '';
  switch (n.code) {
    case 'EPERM':
    case 'EACCES':
      // Denied at open(): the device node's mode or a device cgroup, before any capability check.
      hint = sys === 'open' ? `Check the mode of /dev/net/tun (often 0600, root only) and, in a container, the device cgroup. ${NEEDS_CAP}` : NEEDS_CAP;
      break;
    case 'ENOENT':
    case 'ENODEV':
    case 'ENXIO':
      if (sys === 'open') hint = `/dev/net/tun is missing or the tun driver is not loaded. ${NO_DEVICE}`;
      break;
    case 'EBUSY':
      if (sys === 'ioctl(TUNSETIFF)') hint = 'The name is in use by another open TUN device: choose another name, or a pattern like "svpn%d" to let the kernel pick one.';
      break;
    case 'EINVAL':
      if (sys === 'ioctl(TUNSETIFF)') hint = 'The name may belong to an interface that is not a TUN device, or hold more than one %d.';
      break;
    case 'EEXIST':
      if (sys === 'ioctl(SIOCADDRT)') hint = 'An identical route already exists.';
      break;
    case 'ESRCH':
      if (sys === 'ioctl(SIOCDELRT)') hint = 'There is no such route through this device.';
      break;
    case 'EBADF':
    case 'EBADFD':
      if (sys === 'poll' || sys === 'read') hint = 'The interface was probably deleted (e.g. `ip link del`): close() this device and open a new one.';
      break;
    case 'ENETDOWN':
      hint = 'The device is down: configure() it first.';
      break;
  }
  const err = new TunError(n.code, hint ? `${n.message}. ${hint}` : n.message, n.syscall);
  if (n.written !== undefined) (err as TunError & { written: number }).written = n.written;
  return err;
}

function guard<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toTunError(e);
  }
}

/** The kernel refused the packet itself (a write of something it cannot parse as IP). */
function refused(e: unknown): boolean {
  const n = e as NativeError;
  return n instanceof Error && n.code === 'EINVAL' && n.syscall === 'write';
}

const EMPTY = new Uint8Array(0);
// splice.c's event kinds.
const EV_DATA = 0;
const EV_WRITABLE = 1;
const EV_END = 2;
const EV_ERROR = 3;
const EV_ACTIVITY = 5;

/** Each open device's native handle, for other parts of the binding (linux/server-hub.ts). */
const handles = new WeakMap<TunDevice, object>();

/** The native handle of a device openTun() made; undefined for any other TunDevice. */
export function nativeHandleOf(dev: TunDevice): object | undefined {
  return handles.get(dev);
}

class Device implements TunDevice {
  readonly name: string;
  readonly stats: TunStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, txDropped: 0, txRejected: 0, rxSuperPackets: 0, rxUnsplittable: 0 };
  readonly offload: boolean;
  readonly offloadError?: string;
  superFrames = false;
  private readonly n: Native;
  private readonly h: Handle;

  constructor(n: Native, options: TunOptions) {
    this.n = n;
    const { onPackets, onError } = options;
    const stats = this.stats;
    // Filled with one element type from the start so that V8 keeps it a packed array.
    const views: Uint8Array[] = new Array<Uint8Array>(n.MAX_BATCH).fill(EMPTY);
    let lengths: Uint32Array | undefined;
    let vnet = false;
    const onRead = (slab: ArrayBuffer | null, count: number, err?: NativeError): void => {
      if (slab === null) {
        const e = toTunError(err) as Error;
        if (onError) onError(e);
        else throw e;
        return;
      }
      if (vnet) {
        const n = readOffloaded(slab, lengths!, count, views, stats, this.superFrames);
        if (n > 0) onPackets(views, n);
        return;
      }
      let offset = 0;
      for (let i = 0; i < count; i++) {
        const len = lengths![i]!;
        views[i] = new Uint8Array(slab, offset, len);
        offset += len;
      }
      stats.rxPackets += count;
      stats.rxBytes += offset;
      onPackets(views, count);
    };
    const opened = guard(() => n.open(options.name ?? 'svpn%d', onRead, options.offload === true));
    lengths = opened.lengths;
    vnet = this.offload = opened.offload;
    if (opened.offloadError) this.offloadError = opened.offloadError;
    this.h = opened.handle;
    handles.set(this, this.h);
    this.name = opened.name;
  }

  configure(c: TunConfig): void {
    guard(() => this.n.configure(this.h, c.address, c.prefix, c.mtu ?? 0));
  }

  setMtu(mtu: number): void {
    guard(() => this.n.setMtu(this.h, mtu));
  }

  addRoute(network: string, prefix: number): void {
    guard(() => this.n.addRoute(this.h, network, prefix));
  }

  deleteRoute(network: string, prefix: number): void {
    guard(() => this.n.deleteRoute(this.h, network, prefix));
  }

  write(buf: Uint8Array, offset = 0, length = buf.length - offset): boolean {
    let ok: boolean;
    try {
      ok = this.n.write(this.h, buf, offset, length); // no closure here: this is the per-packet path
    } catch (e) {
      return this.writeFailed(e);
    }
    return this.wrote(ok, length);
  }

  writeVnet(hdr: Uint8Array, buf: Uint8Array, offset: number, length: number): boolean {
    let ok: boolean;
    try {
      ok = this.n.writeVnet(this.h, hdr, buf, offset, length);
    } catch (e) {
      return this.writeFailed(e);
    }
    return this.wrote(ok, length);
  }

  writeParts(hdr: Uint8Array | null, a: Uint8Array, aOffset: number, aLength: number, b: Uint8Array, bOffset: number, bLength: number): boolean {
    let ok: boolean;
    try {
      ok = this.n.writeParts(this.h, hdr, a, aOffset, aLength, b, bOffset, bLength);
    } catch (e) {
      return this.writeFailed(e);
    }
    return this.wrote(ok, aLength + bLength);
  }

  private wrote(ok: boolean, length: number): boolean {
    if (ok) {
      this.stats.txPackets++;
      this.stats.txBytes += length;
    } else this.stats.txDropped++;
    return ok;
  }

  /** A packet the kernel refused is counted and dropped; anything else is the device failing. */
  private writeFailed(e: unknown): false {
    if (refused(e)) {
      this.stats.txRejected++;
      return false;
    }
    throw toTunError(e);
  }

  writeBatch(packets: Uint8Array[], count: number): number {
    count = Math.min(count, packets.length);
    let total = 0;
    for (let from = 0; from < count; ) {
      let written: number;
      // After a refused packet, the rest: a copy of the array, only on that rare path.
      const batch = from === 0 ? packets : packets.slice(from, count);
      try {
        written = this.n.writeBatch(this.h, batch, count - from);
      } catch (e) {
        written = (e as NativeError).written ?? 0;
        this.count(batch, written);
        total += written;
        if (!refused(e)) throw toTunError(e);
        this.stats.txRejected++;
        from += written + 1;
        continue;
      }
      this.count(batch, written);
      this.stats.txDropped += count - from - written;
      return total + written;
    }
    return total;
  }

  private count(packets: Uint8Array[], written: number): void {
    this.stats.txPackets += written;
    for (let i = 0; i < written; i++) this.stats.txBytes += packets[i]!.length;
  }

  close(): void {
    this.n.close(this.h);
  }

  ref(): void {
    this.n.ref(this.h);
  }

  unref(): void {
    this.n.unref(this.h);
  }

  pause(): void {
    this.n.pause(this.h);
  }

  resume(): void {
    try {
      this.n.resume(this.h);
    } catch (e) {
      throw toTunError(e);
    }
  }

  attach(fd: number, initial: Uint8Array, superFrames: boolean, h: AttachHandlers): void {
    const onEvent = (kind: number, arg?: ArrayBuffer | NativeError): void => {
      if (kind === EV_DATA) h.onData(new Uint8Array(arg as ArrayBuffer));
      else if (kind === EV_WRITABLE) h.onWritable();
      else if (kind === EV_END) h.onEnd();
      else if (kind === EV_ERROR) h.onError(arg as NativeError);
      else if (kind === EV_ACTIVITY) h.onActivity();
      else h.onTunError(toTunError(arg) as Error);
    };
    guard(() => this.n.attach(this.h, fd, initial, superFrames, onEvent));
  }

  detach(): void {
    this.n.detach(this.h);
  }

  sendRaw(buf: Uint8Array): number {
    return guard(() => this.n.sendRaw(this.h, buf));
  }

  nativeStats(): NativePathStats {
    return this.n.nativeStats(this.h);
  }
}

/** Creates (or attaches to) a TUN device and starts reading from it. Throws TunError. */
export function openTun(options: TunOptions): TunDevice {
  const n = load();
  if (n instanceof TunError) throw new TunError(n.code, n.message);
  return new Device(n, options);
}

/**
 * Turns IPv6 off on the device. The VPN carries IPv4 only, and an interface with IPv6 on
 * sends router and multicast-listener solicitations that the far end can only drop: bytes
 * a metered link pays for. Returns false where it cannot (no IPv6 in the kernel).
 */
export function disableIpv6(name: string): boolean {
  try {
    writeFileSync(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1');
    return true;
  } catch {
    return false;
  }
}
