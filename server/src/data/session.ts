// One client connection on the data side: the framing of its stream, the check that what it
// sends comes from its own address, and its send queue; a Port of the switch. This is the
// hot path. Per chunk: one framer pass, one route() per frame, one flush(); no copies, no
// closure per session (socket events go through shared handlers), no allocation per frame.
//
// What is not a data packet from its address (requests, spoofing) is for the control side,
// which subclasses Session (control/admission.ts) to answer it and keeps its own state in
// the subclass: one object per connection, not two, as memory per client is counted. The
// session's address and MTU are set by the control side through open(), never written from
// outside.

import type { Socket } from 'node:net';
import { ALL, ANY, DST, SRC, readU32, E_TOO_LONG, SEED_MTU, PROTO_EXT, SRC6, sameAddress6 } from '../../../protocol/index.js';
import { isSuperFrame } from '../../../common/offload/super.js';
import { ipv6Problem } from './ipv6.js';
import type { Metrics } from '../metrics/metrics.js';
import type { FrameParts, Port } from './port.js';
import type { Switch } from './switch.js';
import { held, wrote } from '../transport/turn-writes.js';
import { releaseSource, takeOverRelease } from '../transport/limits.js';
import { OWNER } from '../transport/transport.js';
import { CARRY_MAX, SessionFramer } from './session-framer.js';
import { fromWall, tick, wallTime } from './clock.js';

/** Why sessions end, as counted in simplevpn_disconnects_total. */
export type EndCode =
  | 'client_closed'
  | 'socket_error'
  | 'idle_timeout'
  | 'handshake_timeout'
  | 'malformed_frame'
  | 'frame_too_long'
  | 'frame_timeout'
  | 'frame_memory'
  | 'refused'
  | 'credentials_revoked'
  | 'replaced'
  | 'lease_lost'
  | 'shutdown';

/** What a session needs of the native switching path (data/native-sessions.ts): SessionEnv.native. */
export interface NativeLink {
  /** `s` was granted its address: it moves to the hub if it can. */
  opened(s: Session): void;
  send(s: Session, bytes: Uint8Array): boolean;
  /** Detaches `s`: what was not sent yet. */
  detach(s: Session): Uint8Array | undefined;
}

/** What every session of a server shares: one object, so a session holds one reference. */
export interface SessionEnv {
  readonly sw: Switch;
  readonly metrics: Metrics;
  /** Bytes queued towards one client before its packets are dropped. */
  readonly sendQueue: number;
  /** Largest frame accepted from a client. */
  readonly maxFrame: number;
  /** The bytes of unfinished frames that all sessions hold. */
  readonly reassembly: Reassembly;
  /** Where plain-TCP sessions go once open, to be read and written in C (native-sessions.ts); null when off. */
  readonly native?: NativeLink | null;
}

/**
 * The bytes of unfinished frames (received, waiting for the rest of their frame) held across
 * every session of a server, under a budget. Above the budget, a session whose unfinished
 * frame grows past its share (the budget divided among the sessions holding one) is closed.
 */
export class Reassembly {
  /** Bytes held, and sessions holding some. */
  held = 0;
  holders = 0;
  constructor(readonly budget: number) {}
}


// Session.bits. The control side's own start at FLAG_FREE.
const CLOSED = 1;
const CORKED = 2;
const COALESCE = 4;
const SUPER = 8;
/** Read and written by the native hub (native-sessions.ts): writes go through it. */
const NATIVE = 16;
export const FLAG_FREE = 32;

/**
 * The framer of chunks from sessions without one of their own. Taken while in use, so that a
 * session's onData reached from inside another's would get a fresh one, not a busy one; a
 * framer between chunks with nothing pending holds no state (it let go of the chunk).
 */
let spare: SessionFramer | null = null;

function takeSpare(maxFrame: number): SessionFramer {
  const f = spare !== null && spare.maxFrame === maxFrame ? spare : new SessionFramer(maxFrame);
  spare = null;
  return f;
}

/**
 * A client connection's data side. The three abstract methods are the control side's: what
 * the session cannot decide itself.
 */
export abstract class Session<E extends SessionEnv = SessionEnv> implements Port {
  // Every field costs each connection 8 bytes: yes/no states share one (`bits`), times are
  // kept in clock.ts's small integers, and what only some sessions need lives elsewhere.
  /** When the client last sent anything (clock.ts's ms). */
  private rxAt = tick();
  rxBytes = 0;
  rxPackets = 0;
  txBytes = 0;
  txPackets = 0;
  drops = 0;
  /** CLOSED, CORKED, COALESCE, SUPER, and the control side's bits (FLAG_FREE and up). */
  protected bits = 0;
  /** When the unfinished frame held now began to arrive (clock.ts's ms), or 0 when there is none. */
  private partialAt = 0;
  /** Bytes of that frame, as counted in the server's Reassembly. */
  private partial = 0;
  private addr = ANY;
  /** Its IPv6 address, when it asked for one and the server has IPv6 (--subnet6). */
  private addr6: Uint8Array | null = null;
  private mtu_ = SEED_MTU;
  /**
   * Its own framer, only once a frame of its stream was left unfinished at the end of a
   * chunk with more than CARRY_MAX bytes of it; until then chunks go through a spare framer
   * shared by every session (an idle client, whose request arrived in one chunk, costs no
   * framer), and the few bytes of an unfinished frame wait here as text (SessionFramer.carry).
   */
  private framer: SessionFramer | string | null = null;

  constructor(
    readonly socket: Socket,
    protected readonly env: E,
  ) {
    (socket as any)[OWNER] = this;
    socket.setNoDelay(true);
    // One listener per event: a second one makes Node keep an array of them (64 bytes each).
    takeOverRelease(socket);
    takeOverEnd(socket);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('end', onEnd);
  }

  /** The session is closed (or closing). */
  get closed(): boolean {
    return (this.bits & CLOSED) !== 0;
  }

  /** When the client last sent anything (ms, as Date.now()). */
  get lastRx(): number {
    return wallTime(this.rxAt);
  }

  /** When the unfinished frame held now began to arrive (ms, as Date.now()), or 0 when there is none. */
  get partialSince(): number {
    return this.partialAt === 0 ? 0 : wallTime(this.partialAt);
  }

  /** Declared T_OFFLOAD: takes and sends KIND_SUPER frames (the control side sets it). */
  get superPackets(): boolean {
    return (this.bits & SUPER) !== 0;
  }

  set superPackets(on: boolean) {
    this.bits = on ? this.bits | SUPER : this.bits & ~SUPER;
  }

  /** Its VPN address: 0 until the control side grants one. */
  get address(): number {
    return this.addr;
  }

  /** Largest packet this client takes (granted at its request). */
  get mtu(): number {
    return this.mtu_;
  }

  /** Frames to this client may be merged into one write: not for seed clients, which treat
   * each read() as one packet and would lose the rest of a merged write. */
  get coalesce(): boolean {
    return (this.bits & COALESCE) !== 0;
  }

  /** The control side granted `address`: data from it is switched from now on. */
  open(address: number, mtu: number, coalesce: boolean): void {
    this.addr = address;
    this.mtu_ = mtu;
    this.bits = coalesce ? this.bits | COALESCE : this.bits & ~COALESCE;
    // Only a client whose frames may be coalesced: C writes what it switches back to back.
    if (coalesce && this.env.native) this.env.native.opened(this);
  }

  /** Whether the native hub reads and writes this session (native-sessions.ts sets it). */
  get native(): boolean {
    return (this.bits & NATIVE) !== 0;
  }

  set native(on: boolean) {
    this.bits = on ? this.bits | NATIVE : this.bits & ~NATIVE;
  }

  /**
   * The bytes of the unfinished frame this session holds, handed over (to the native hub,
   * which reads the stream from now on) and forgotten here.
   */
  takeUnfinished(): Uint8Array {
    const own = this.framer;
    this.framer = null;
    if (this.partial !== 0) this.holding(0, false, tick());
    if (own === null) return new Uint8Array(0);
    if (typeof own === 'string') return Uint8Array.from(own, (c) => c.charCodeAt(0));
    return own.takeHeld();
  }

  /**
   * What the native hub counted for this session since it last asked (native-sessions.ts's
   * drain order): packets and bytes received and sent, drops, when bytes last came, and when
   * the unfinished frame C holds began to arrive (wall ms; 0: none).
   */
  countNative(c: Float64Array): void {
    const m = this.env.metrics;
    this.rxPackets += c[0];
    this.rxBytes += c[1];
    this.txPackets += c[2];
    this.txBytes += c[3];
    this.drops += c[4];
    m.rxPackets += c[0];
    m.rxBytes += c[1];
    m.txPackets += c[2];
    m.txBytes += c[3];
    m.drops.queue_full += c[4];
    const at = fromWall(c[5]);
    if (at > this.rxAt) this.rxAt = at;
    this.partialAt = c[6] === 0 ? 0 : fromWall(c[6]);
  }

  /** Its IPv6 address, or null. */
  get address6(): Uint8Array | null {
    return this.addr6;
  }

  /** The control side granted an IPv6 address too (after open()): IPv6 from it is switched from now on. */
  open6(address: Uint8Array): void {
    this.addr6 = address;
  }

  /** An address request (destination 0.0.0.0) arrived. */
  protected abstract request(frame: Uint8Array): void;
  /** A data packet (IPv4 or IPv6, its header at p[o]) whose source is not the session's address was dropped. */
  protected abstract spoofed(p: Uint8Array, o: number): void;
  /** The session is closed: release what it held. Called once. */
  protected abstract ended(code: EndCode, detail: string): void;

  /** Frames of one received chunk. */
  onData(chunk: Uint8Array): void {
    const env = this.env;
    const m = env.metrics;
    const sw = env.sw;
    const own = this.framer;
    let f: SessionFramer;
    if (own === null) f = takeSpare(env.maxFrame);
    else if (typeof own === 'string') {
      f = takeSpare(env.maxFrame);
      f.resume(own);
      this.framer = null;
    } else f = own;
    let me = this.addr;
    const now = (this.rxAt = tick());
    f.push(chunk);
    for (let len; (len = f.advance()) > 0; ) {
      // The frame is b[o, o + len): no view is made unless it has to leave on its own.
      let b = f.buf;
      let o = f.start;
      if (f.split !== 0) {
        // It spanned two reads and came in two parts: switched so when it is a data packet.
        if (this.receiveParts(f, len)) continue;
        b = f.joined();
        o = 0;
      }
      if (b[o] >> 4 !== 4) {
        // IPv6 (the framer passes versions 4 and 6 only): a method of its own, off IPv4's path.
        this.receive6(b, o, len);
        continue;
      }
      const src = readU32(b, o + SRC);
      const dst = readU32(b, o + DST);
      if (src !== me || me === ANY || dst === ANY) {
        this.control(b.subarray(o, o + len), src, dst);
        if ((this.bits & CLOSED) !== 0) return sw.flush(); // its framer, spare or own, goes with it
        me = this.addr; // a request may just have assigned it
        continue;
      }
      this.rxPackets++;
      this.rxBytes += len;
      m.rxPackets++;
      m.rxBytes += len;
      if (b[o + 9] === PROTO_EXT && (this.bits & SUPER) !== 0 && isSuperFrame(b, o, len)) sw.routeSuper(this, b, o, len, dst);
      else sw.route(this, b, o, len, dst);
    }
    sw.flush();
    if (f.error !== null) return this.end(f.error === E_TOO_LONG ? 'frame_too_long' : 'malformed_frame', f.error);
    // Once per chunk, when an unfinished frame is or was held: what it holds now.
    const held = f.pending;
    if (f !== own) {
      if (held > CARRY_MAX) this.framer = f; // the spare becomes its own; the next chunk elsewhere makes another
      else {
        if (held !== 0) this.framer = f.carry();
        spare = f;
      }
    }
    if ((held | this.partial) !== 0) this.holding(held, held !== this.partial + chunk.length, now);
  }

  /**
   * A frame in two parts (FrameParts: its header whole in the first): an IPv4 data packet
   * from the client's address is counted and switched in its parts (true); anything else
   * (IPv6, control, spoofed) the caller joins and handles as any frame (false).
   */
  private receiveParts(p: FrameParts, len: number): boolean {
    const b = p.buf;
    const o = p.start;
    const me = this.addr;
    if (b[o] >> 4 !== 4 || me === ANY) return false;
    const dst = readU32(b, o + DST);
    if (readU32(b, o + SRC) !== me || dst === ANY) return false;
    this.received(len);
    this.env.sw.routeParts(this, p, dst, b[o + 9] === PROTO_EXT && (this.bits & SUPER) !== 0 && isSuperFrame(b, o, len));
    return true;
  }

  /** A data packet of `len` bytes from the client, counted. */
  private received(len: number): void {
    const m = this.env.metrics;
    this.rxPackets++;
    this.rxBytes += len;
    m.rxPackets++;
    m.rxBytes += len;
  }

  /**
   * An IPv6 packet: from a client that holds no IPv6 address, not_ipv4; else switched if its
   * source is that address and its header chain is one the server passes on. No control
   * message is IPv6.
   */
  private receive6(b: Uint8Array, o: number, len: number): void {
    const m = this.env.metrics;
    const me = this.addr6;
    if (me === null) {
      m.drops.not_ipv4++;
      return;
    }
    if (!sameAddress6(b, o + SRC6, me, 0)) {
      m.drops.spoofed_source++;
      this.drops++;
      this.spoofed(b, o);
      return;
    }
    if (ipv6Problem(b, o, len) !== null) {
      m.drops.bad_ipv6++;
      this.drops++;
      return;
    }
    this.received(len);
    this.env.sw.route6(this, b, o, len);
  }

  /**
   * The unfinished frame now holds `held` bytes (`fresh`: it began in this chunk). Counted
   * in the server's budget; over it, a session beyond its share is closed.
   */
  private holding(held: number, fresh: boolean, now: number): void {
    const r = this.env.reassembly;
    const was = this.partial;
    if (was === 0) r.holders++;
    else if (held === 0) r.holders--;
    r.held += held - was;
    this.partial = held;
    this.partialAt = held === 0 ? 0 : fresh || was === 0 ? now : this.partialAt;
    if (held > was && r.held > r.budget && held > r.budget / r.holders)
      this.end('frame_memory', `unfinished frames hold ${r.held} bytes on ${r.holders} connections, over the budget of ${r.budget}; this one ${held}`);
  }

  /** Everything that is not a data packet from the assigned address. */
  private control(p: Uint8Array, src: number, dst: number): void {
    const m = this.env.metrics;
    if (src === ALL && dst === ALL) {
      // Keepalive: echoed unaltered.
      m.keepalives++;
      this.writeNow(p);
    } else if (dst === ANY) {
      this.request(p);
    } else if (this.addr === ANY) {
      m.drops.unassigned++;
      this.drops++;
    } else {
      m.drops.spoofed_source++;
      this.drops++;
      this.spoofed(p, 0);
    }
  }

  /** One packet towards this client. */
  write(buf: Uint8Array, off: number, len: number): boolean {
    return this.deliver(off === 0 && len === buf.length ? buf : buf.subarray(off, off + len), 1);
  }

  /** A KIND_SUPER frame towards this client (only when it declared it takes them). */
  writeSuper(buf: Uint8Array, off: number, len: number): boolean {
    return this.write(buf, off, len);
  }

  /** Writes frames towards this client, within its send-queue cap. */
  deliver(data: Uint8Array, packets: number): boolean {
    if ((this.bits & NATIVE) !== 0) return this.deliverNative(data, packets);
    if (!this.admit(data.length, packets)) return false;
    this.socket.write(data);
    this.sent(data.length, packets);
    return true;
  }

  /**
   * A frame in two parts (FrameParts) towards this client: its two views written in the
   * writev of the chunk's cork, no copy. Joined for a seed client (no cork: each write of
   * its stream may be read as a packet) and for a native one (the hub takes one buffer).
   */
  writeParts(p: FrameParts): boolean {
    const n = p.length;
    if ((this.bits & (COALESCE | NATIVE)) !== COALESCE) return this.deliver(p.joined(), 1);
    if (!this.admit(n, 1)) return false;
    const s = this.socket;
    const k = p.split;
    s.write(p.buf.subarray(p.start, p.start + k));
    s.write(p.tail.subarray(p.tailStart, p.tailStart + n - k));
    this.sent(n, 1);
    return true;
  }

  /** Frames towards a session the native hub writes: queued there, behind what C queued, within the same cap. */
  private deliverNative(data: Uint8Array, packets: number): boolean {
    if ((this.bits & CLOSED) !== 0 || !this.env.native!.send(this, data)) {
      this.env.metrics.drops.queue_full += packets;
      this.drops += packets;
      return false;
    }
    this.sent(data.length, packets);
    return true;
  }

  /** Whether `bytes` more fit the send queue (else they are counted as dropped); corks a coalescing client's socket for the chunk. */
  private admit(bytes: number, packets: number): boolean {
    const s = this.socket;
    const env = this.env;
    const bits = this.bits;
    if ((bits & CLOSED) !== 0 || held(s, env.sendQueue) + bytes > env.sendQueue) {
      env.metrics.drops.queue_full += packets;
      this.drops += packets;
      return false;
    }
    if ((bits & (COALESCE | CORKED)) === COALESCE) {
      this.bits = bits | CORKED;
      s.cork();
      env.sw.corked(this);
    }
    return true;
  }

  /** `bytes` of `packets` frames went to the socket: counted. */
  private sent(bytes: number, packets: number): void {
    const m = this.env.metrics;
    wrote(this.socket, bytes);
    this.txPackets += packets;
    this.txBytes += bytes;
    m.txPackets += packets;
    m.txBytes += bytes;
  }

  /** Uncorks: what deliver() queued during the chunk leaves in one writev. */
  flush(): void {
    if ((this.bits & CORKED) !== 0) {
      this.bits &= ~CORKED;
      this.socket.uncork();
    }
  }

  /** A control message to this client, outside the data counters. */
  writeNow(msg: Uint8Array): void {
    if ((this.bits & (CLOSED | NATIVE)) === NATIVE) this.env.native!.send(this, msg);
    else if ((this.bits & CLOSED) === 0 && this.socket.writableLength + msg.length <= this.env.sendQueue) this.socket.write(msg);
  }

  /** Ends the session; `last` is written first (a refusal), then the connection closes. */
  end(code: EndCode, detail: string, last?: Uint8Array): void {
    if ((this.bits & CLOSED) !== 0) return;
    this.bits |= CLOSED;
    if (this.partial !== 0) {
      const r = this.env.reassembly;
      r.held -= this.partial;
      r.holders--;
      this.partial = 0;
    }
    const s = this.socket;
    // Detached first: what C had not sent yet goes before `last`, through Node.
    const unsent = (this.bits & NATIVE) !== 0 ? this.env.native!.detach(this) : undefined;
    this.bits &= ~NATIVE;
    if (last !== undefined && !s.destroyed) {
      s.end(unsent === undefined ? last : Buffer.concat([unsent, last]));
      // A peer that never reads must not hold the socket open.
      setTimeout(() => s.destroy(), 2000).unref();
    } else {
      s.destroy();
    }
    this.ended(code, detail);
  }
}

function sessionOf(s: Socket): Session {
  return (s as any)[OWNER];
}

function onData(this: Socket, chunk: Buffer): void {
  const session = sessionOf(this);
  if (!session.closed) session.onData(chunk);
}

function onError(this: Socket, err: NodeJS.ErrnoException): void {
  sessionOf(this).end('socket_error', err.code || err.message);
}

function onEnd(this: Socket): void {
  sessionOf(this).end('client_closed', 'end of stream');
}

function onClose(this: Socket): void {
  releaseSource(this);
  sessionOf(this).end('client_closed', 'connection closed');
}

/**
 * Node's own 'end' listener on a net.Socket (onReadableStreamEnd) makes writes after the
 * peer's FIN fail instead of going out. A session destroys its socket at the FIN (onEnd),
 * so that it writes nothing after it either: onEnd takes the listener's place.
 */
function takeOverEnd(s: Socket): void {
  const l = s.listeners('end');
  if (l.length === 1 && l[0].name === 'onReadableStreamEnd') s.removeListener('end', l[0] as () => void);
}
