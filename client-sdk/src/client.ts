// The client session: connect, ask for an address, apply what the server pushes, move
// packets both ways, keep the link alive, and reconnect when it dies.

import { Backoff } from './backoff.js';
import { KIND_CHALLENGE, KIND_RESPONSE, T_AUTH_PROOF, Config, KEEPALIVE, KIND_REFUSAL, KIND_REPLY, T_CLIENT, Tlv, ascii, credentials, extKind, extMessage, KIND_REQUEST, readConfig, readRefusal, seedRequest, REFUSE_IN_USE, T_LEASE, T_MTU, u16, Framer, frameLength, ALL, ANY, DST, SRC, formatIPv4, parseIPv4, prefixToMask, readU32, MAX_FRAME, KEEPALIVE_S, SEED_MTU } from '../../protocol/index.js';
import type { Clock, Connect, Socket, Tun } from './types.js';

export interface Route {
  network: string;
  prefix: number;
}

/** The 'ready' state: the address the server assigned and the configuration that came with it. */
export interface ReadyInfo {
  state: 'ready';
  address: string;
  prefix: number;
  netmask: string;
  /** The server's VPN address; null when a seed server did not say. */
  gateway: string | null;
  mtu: number;
  /** Seconds of silence before a keepalive: the server's, else the option's. */
  keepalive: number;
  routes: Route[];
  /** 'simplevpn' when the server spoke the extension, 'seed' otherwise. */
  server: 'simplevpn' | 'seed';
  /**
   * The server's reply as it came (a copy): an extension message's TLVs, for eachTlv;
   * readIpv6Config() (simplevpn/node, protocol/ipv6.ts) reads the IPv6 grant from it.
   */
  reply: Uint8Array;
}

/**
 * Why the link is down:
 * - refused: the server refused the address request (`code` says why, the REFUSE_* codes
 *   of Refusal; a 2013 server refuses by closing during the request: code 1, in use).
 * - closed: an established connection ended or failed.
 * - connect_failed, resolve_failed: no connection was made, or the name did not resolve.
 * - connect_timeout, request_timeout, keepalive_timeout: no connection, no reply to the
 *   address request, no answer to a keepalive within `timeout`.
 * - protocol_error: the server sent bytes that are not the protocol.
 * - certificate, certificate_name, not_tls, expects_tls: a setting to fix, retrying the same
 *   way cannot succeed: the server's certificate is not trusted, or not for the name
 *   dialled; the port does not speak TLS, or expects it.
 * - proxy_refused: an HTTP proxy refused the tunnel (407 or 403): a setting to fix too.
 */
export type DownReason =
  | 'refused'
  | 'closed'
  | 'connect_failed'
  | 'resolve_failed'
  | 'connect_timeout'
  | 'request_timeout'
  | 'keepalive_timeout'
  | 'protocol_error'
  | 'certificate'
  | 'certificate_name'
  | 'not_tls'
  | 'expects_tls'
  | 'proxy_refused';

/** The 'down' state: why, and when the next attempt is. */
export interface DownInfo {
  state: 'down';
  reason: DownReason;
  /**
   * What only this occurrence can say, for people: the server's refusal text ("code N"
   * without one), the transport's words ("end of stream", a TLS error), the framing error,
   * what Connect threw; '' where `reason` says it all (the timeouts, expects_tls, a 2013
   * server's refusal). describeDown() in simplevpn/node makes one line of reason and detail.
   */
  detail: string;
  /** The server's refusal code (Refusal), 0 when it did not refuse. */
  code: number;
  /** Milliseconds until the next attempt. */
  retryIn: number;
  /** certificate_name: the names the server's certificate is for, when the transport knows them. */
  names?: string[];
}

/** What onState reports. */
export type StateInfo = { state: 'idle' } | { state: 'connecting' } | ReadyInfo | DownInfo | { state: 'closed' };
export type StateName = StateInfo['state'];

export interface ClientOptions {
  /** Opens a connection to the server. */
  connect: Connect;
  /** Receives the packets that arrive over the VPN. */
  tun: Tun;
  /** Defaults to the engine's setTimeout and performance.now (Date.now where there is none). */
  clock?: Clock;
  /** A static address to ask for; omitted, the server picks one. */
  address?: string;
  /** Seconds without hearing from the server before sending a keepalive (15, as the seed; so does 0). A value the server pushes wins. */
  keepalive?: number;
  /** Seconds to wait for the connection, the address reply, or any answer after a keepalive (10; so does 0). */
  timeout?: number;
  /** Reconnect delay bounds in seconds (1 and 60; so does 0). */
  minBackoff?: number;
  maxBackoff?: number;
  /** Speak only the seed protocol: a byte-exact 20-byte request, no extension. */
  seed?: boolean;
  /** A name the server logs for this client. */
  name?: string;
  /** The MTU to ask the server for: the largest packet this side sends and takes. Omitted,
   * the server grants 1500, what the seed devices use. */
  mtu?: number;
  /** This client's id in the server's auth file (printable ASCII, at most 255 characters),
   * and one of: `prove`, which answers the server's challenge with the proof bytes, at once
   * or by a promise (simplevpn/hmac makes one from a device key, simplevpn/node from a
   * secret or key; it gets the challenge and the request, valid during the call only, and
   * must not throw); `secret`, presented as is with every request (bearer: over TLS only,
   * and only to a server that allows it). */
  credentials?: { id: string; secret?: string; prove?: (challenge: Uint8Array, request: Uint8Array) => Uint8Array | PromiseLike<Uint8Array> };
  /** Largest frame accepted from the server (65535). */
  maxFrame?: number;
  /** More TLVs for the request (the extension only), e.g. a capability the app handles, or
   * IPv6: `[T_IPV6, ipv6Request()]` (simplevpn/node) asks for an address beside the IPv4 one.
   * IPv6 packets pass both ways whatever is asked. */
  tlvs?: Tlv[];
  onState?: (info: StateInfo) => void;
  /** Room again after send() returned false for a full socket. With it set, such a send is
   * not counted as dropped: the packets are the caller's to keep (its reads paused) and to
   * send again from here. */
  onWritable?: () => void;
  random?: () => number;
}

export interface ClientStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets not sent: the socket was full, the link was not ready, or the packet was malformed. */
  dropped: number;
  /** Packets received that the Tun did not take (its write returned false). */
  rxDropped: number;
  keepalives: number;
  connects: number;
}

// Phases of the session. Only `ready` moves packets.
const IDLE = 0;
const CONNECTING = 1;
const REQUESTING = 2;
const READY = 3;
const WAITING = 4;
const CLOSED = 5;

const SEED_PREFIX = 16;

const defaultClock = (): Clock => {
  const g = globalThis as any;
  const p = g.performance;
  return { now: p ? () => p.now() : Date.now, setTimeout: (f, ms) => g.setTimeout(f, ms), clearTimeout: (h) => g.clearTimeout(h) };
};

export class Client {
  readonly stats: ClientStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, dropped: 0, rxDropped: 0, keepalives: 0, connects: 0 };

  private readonly o: ClientOptions;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly userAddress: number;
  private readonly maxFrame: number;
  private readonly timeoutMs: number;
  private keepaliveMs: number;
  private phase = IDLE;
  private st: StateInfo = { state: 'idle' };
  private addr: string | null = null;
  private ls: Uint8Array | null = null;
  private sock: Socket | null = null;
  private gen = 0; // bumps on every new or dropped connection; stale callbacks compare it
  private framer = new Framer();
  private tail: Uint8Array | null = null; // what the socket has yet to take of a frame it took in part
  private timer: unknown = null;
  private lastRx = 0;
  private kaOut = false;
  private want = 0; // the address the next request asks for
  private extServer = false; // the last reply was an extension reply
  private rq: Uint8Array | null = null; // the last request sent: a challenge's proof covers it

  constructor(options: ClientOptions) {
    this.o = options;
    this.clock = options.clock || defaultClock();
    // 0 is no sensible value for any of these (a reconnect loop, a keepalive storm): it means the default.
    this.backoff = new Backoff((options.minBackoff || 1) * 1000, (options.maxBackoff || 60) * 1000, options.random);
    this.maxFrame = options.maxFrame || MAX_FRAME;
    this.timeoutMs = (options.timeout || 10) * 1000;
    this.keepaliveMs = (options.keepalive || KEEPALIVE_S) * 1000;
    const a = options.address ? parseIPv4(options.address) : 0;
    if (a < 0 || a === ALL) throw new Error('invalid address: ' + options.address);
    this.want = this.userAddress = a;
  }

  /** The latest state report. */
  get info(): StateInfo {
    return this.st;
  }

  /** The address last assigned (kept while the link is down), null before the first. */
  get address(): string | null {
    return this.addr;
  }

  /** The lease token of the last extension reply, presented on reconnect. */
  get lease(): Uint8Array | null {
    return this.ls;
  }

  start(): void {
    if (this.phase === IDLE) this.open();
  }

  /**
   * Sends an IP packet from this side into the VPN, or several packets back to back in one
   * buffer (a batch read from a tun), in one socket write. Returns false when it was dropped:
   * not connected, the socket is full or still finishing an earlier packet, or the bytes are
   * not whole well-formed frames (they would desynchronise the stream). Of a batch, the
   * packets the socket had no room for are dropped (and counted); true when it took the
   * first. With `onWritable` set, a send the full socket took none of is not counted: the
   * caller keeps it and sends it again when onWritable is called. The transport may keep `data` until it is sent, and so may the SDK: the part of
   * a packet the socket did not take yet.
   */
  send(data: Uint8Array): boolean {
    const len = data.length;
    let n = 0;
    if (this.phase === READY) {
      for (let o = 0, f = 0; o < len; o += f, n++) {
        f = frameLength(data, o, len - o, this.maxFrame);
        if (f <= 0 || o + f > len) {
          n = 0;
          break;
        }
      }
    }
    // The packets the socket took, the last perhaps in part (its tail is on its way).
    const o = n ? this.put(data) : 0;
    if (!o && n && this.o.onWritable) return false;
    let k = n;
    if (o < len) for (let p = (k = 0); p < o; k++) p += frameLength(data, p, len - p, MAX_FRAME);
    const st = this.stats;
    st.dropped += (n || 1) - k;
    st.txPackets += k;
    st.txBytes += o;
    return k > 0;
  }

  /** Stops for good: closes the connection and every timer. */
  close(): void {
    if (this.phase === CLOSED) return;
    this.phase = CLOSED;
    this.drop();
    this.emit({ state: 'closed' });
  }

  /**
   * Writes whole frames, unless the tail of an earlier one is still waiting; keeps the
   * tail of a frame the socket took only part of. Returns the bytes of the frames taken,
   * that one included.
   */
  private put(data: Uint8Array): number {
    if (this.tail) return 0;
    const len = data.length;
    const took = this.write(data);
    let o = len;
    if (took < len) {
      for (o = 0; o < took; ) o += frameLength(data, o, len - o, MAX_FRAME);
      if (o > took) this.tail = data.subarray(took, o);
    }
    return o;
  }

  /** What the socket took of `data`: true, from an adapter written when write() returned a
   * boolean, is all of it (false, none). */
  private write(data: Uint8Array): number {
    const n = this.sock!.write(data) as number | boolean;
    return n === true ? data.length : +n;
  }

  private open(): void {
    this.phase = CONNECTING;
    this.framer = new Framer(this.maxFrame);
    this.kaOut = false;
    this.stats.connects++;
    this.emit({ state: 'connecting' });
    this.lastRx = this.clock.now();
    this.arm(this.timeoutMs);
    const gen = ++this.gen;
    let early = false; // onOpen ran inside connect(), before this.sock was set
    let s: Socket;
    try {
      s = this.o.connect({
        onOpen: () => {
          if (gen !== this.gen) return;
          if (this.sock === null) early = true;
          else this.request();
        },
        onData: (chunk) => gen === this.gen && this.data(chunk, gen),
        onWritable: () => {
          if (gen !== this.gen) return;
          const t = this.tail;
          if (t) {
            const n = this.write(t);
            this.tail = n < t.length ? t.subarray(n) : null;
          }
          if (!this.tail) this.o.onWritable?.();
        },
        onClose: (code, detail, names) => {
          if (gen !== this.gen) return;
          // A seed server refuses by ending the stream during the request; a server that
          // spoke the extension refuses with a message, so from it that is a lost
          // connection, and an error (a TLS alert, a reset) is one whoever the server is.
          const closed = code === 'end' || code === 'error';
          const refused = code === 'end' && this.phase === REQUESTING && !this.extServer;
          this.lost(refused ? 'refused' : closed ? 'closed' : code, refused ? '' : detail, refused ? REFUSE_IN_USE : 0, names);
        },
      });
    } catch (err) {
      return this.lost('connect_failed', 'could not connect: ' + err);
    }
    // onOpen or onClose may already have run inside connect().
    if (gen !== this.gen) return s.close();
    this.sock = s;
    if (early) this.request();
  }

  private request(): void {
    this.phase = REQUESTING;
    this.lastRx = this.clock.now();
    const o = this.o;
    let msg: Uint8Array;
    if (o.seed) {
      msg = seedRequest(this.want);
    } else {
      const c = o.credentials;
      const tlvs: Tlv[] = c ? credentials(c.id, c.secret) : [];
      if (o.name) tlvs.push([T_CLIENT, ascii(o.name)]);
      if (o.mtu) tlvs.push([T_MTU, u16(o.mtu)]);
      if (this.ls) tlvs.push([T_LEASE, this.ls]);
      if (o.tlvs) tlvs.push(...o.tlvs);
      msg = extMessage(this.want, ANY, KIND_REQUEST, tlvs);
    }
    this.put((this.rq = msg));
  }

  private data(chunk: Uint8Array, gen: number): void {
    // A TLS alert record (0x15) where the reply should begin: a TLS port. No IP frame
    // starts with that byte, and a seed server never sends one.
    if (this.phase === REQUESTING && chunk[0] === 0x15 && !this.framer.pending) return this.lost('expects_tls');
    this.lastRx = this.clock.now();
    if (this.kaOut) {
      // Answered: the next keepalive is due a full interval from now.
      this.kaOut = false;
      this.arm(this.keepaliveMs);
    }
    const f = this.framer;
    const st = this.stats;
    f.push(chunk);
    for (let n; (n = f.advance()) > 0; ) {
      const b = f.buf;
      const o = f.start;
      if (this.phase === READY) {
        // Keepalive echoes (source 255.255.255.255) and the server's control messages
        // (source 0.0.0.0) are not data: no packet through the VPN has either source.
        if (b[o] >> 4 === 4) {
          const src = readU32(b, o + SRC);
          if (src === ALL || src === ANY) continue;
        }
        st.rxPackets++;
        st.rxBytes += n;
        if (this.o.tun.write(b, o, n) === false) st.rxDropped++;
      } else {
        this.reply(b.subarray(o, o + n));
      }
      if (gen !== this.gen) return; // closed or reconnecting from inside a callback
    }
    if (f.error !== null) this.lost('protocol_error', f.error);
  }

  private reply(p: Uint8Array): void {
    const kind = extKind(p);
    if (kind === KIND_REFUSAL) {
      const r = readRefusal(p);
      return this.lost('refused', r.text || 'code ' + r.code, r.code || REFUSE_IN_USE);
    }
    if (kind === KIND_CHALLENGE) {
      // The proof goes out once prove() has it; the link drops if there is none to be had.
      const c = this.o.credentials;
      const gen = this.gen;
      const send = (proof: Uint8Array) => {
        if (gen === this.gen) this.put(extMessage(this.want, ANY, KIND_RESPONSE, [[T_AUTH_PROOF, proof]]));
      };
      const fail = (e: unknown) => {
        if (gen === this.gen) this.lost('protocol_error', 'prove(): ' + e);
      };
      if (!c || !c.prove) return fail('none given');
      const r = c.prove(p, this.rq!) as any;
      return r.then ? r.then(send, fail) : send(r);
    }
    const addr = readU32(p, DST);
    if (p[0] >> 4 !== 4 || addr === ANY || addr === ALL) return this.lost('protocol_error', 'invalid address reply');
    // A seed server echoes our request with only the destination rewritten: its TLVs are
    // our own, so only a KIND_REPLY carries the server's configuration.
    const c: Config = kind === KIND_REPLY ? readConfig(p) : { routes: [] };
    const address = (this.addr = formatIPv4(addr));
    this.extServer = kind === KIND_REPLY;
    if (!this.userAddress) this.want = addr;
    this.ls = c.lease || null;
    this.keepaliveMs = (c.keepalive || this.o.keepalive || KEEPALIVE_S) * 1000;
    if (c.idleTimeout) this.keepaliveMs = Math.min(this.keepaliveMs, (c.idleTimeout * 1000) / 2);
    this.phase = READY;
    this.backoff.reset();
    const prefix = c.prefix || SEED_PREFIX; // a /0 subnet is none
    this.arm(this.keepaliveMs);
    const info: ReadyInfo = {
      state: 'ready',
      address,
      prefix,
      netmask: formatIPv4(prefixToMask(prefix)),
      gateway: c.gateway === undefined ? null : formatIPv4(c.gateway),
      mtu: c.mtu || SEED_MTU,
      keepalive: this.keepaliveMs / 1000,
      routes: c.routes.map(([n, len]) => ({ network: formatIPv4(n), prefix: len })),
      server: kind === KIND_REPLY ? 'simplevpn' : 'seed',
      // A copy: `p` may be a view of a receive buffer the transport reuses (a Node Buffer's slice() would not copy).
      reply: new Uint8Array(p),
    };
    this.emit(info);
  }

  /** The connection is gone or unusable: tear it down and schedule the next attempt. */
  private lost(reason: DownReason, detail = '', code = 0, names?: string[]): void {
    const wasRequesting = this.phase === REQUESTING;
    this.drop();
    // Our old address or lease was refused: forget the lease, and ask for any address next
    // time unless the user chose it. Not when the server could not take anyone just now
    // (FULL 4, RATE 7, SHUTDOWN 8, STORE_UNAVAILABLE 10, bits of 0x590): both may still be
    // ours, on this server later or on another. (A shift takes its count modulo 32: codes
    // above 10 are tested apart.)
    if (wasRequesting && code && (code > 10 || !((0x590 >> code) & 1))) {
      this.ls = null;
      if (!this.userAddress) this.want = 0;
    }
    const delay = this.backoff.next();
    this.phase = WAITING;
    this.arm(delay);
    this.emit({ state: 'down', reason, detail, code, retryIn: delay, names });
  }

  private drop(): void {
    const s = this.sock;
    this.sock = null;
    this.tail = null;
    this.gen++;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    if (s) s.close();
  }

  private arm(ms: number): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(this.tick, ms);
  }

  // One timer serves every phase: connect and request deadlines, keepalive, backoff.
  private tick = (): void => {
    this.timer = null;
    const ka = this.keepaliveMs;
    const to = this.timeoutMs;
    const idle = this.clock.now() - this.lastRx;
    if (this.phase === WAITING) return this.open();
    if (this.phase === READY) {
      if (idle >= ka + to) return this.lost('keepalive_timeout');
      if (idle < ka) {
        this.kaOut = false;
        return this.arm(ka - idle);
      }
      if (!this.kaOut) {
        this.kaOut = true;
        this.stats.keepalives++;
        this.put(KEEPALIVE);
      }
      return this.arm(ka + to - idle);
    }
    if (this.phase === CONNECTING || this.phase === REQUESTING) {
      if (idle >= to) return this.lost(this.phase === CONNECTING ? 'connect_timeout' : 'request_timeout');
      this.arm(to - idle);
    }
  };

  private emit(info: StateInfo): void {
    this.st = info;
    if (this.o.onState) this.o.onState(info);
  }
}
