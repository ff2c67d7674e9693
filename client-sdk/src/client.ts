// The client session: connect, ask for an address, apply what the server pushes, move
// packets both ways, keep the link alive, and reconnect when it dies.

import { Backoff } from './backoff.js';
import { Config, KEEPALIVE, KIND_REFUSAL, KIND_REPLY, T_CLIENT, Tlv, ascii, extKind, extMessage, KIND_REQUEST, readConfig, readRefusal, seedRequest, REFUSE_IN_USE, T_LEASE, T_MTU, u16, Framer, frameLength, ALL, ANY, DST, SRC, formatIPv4, parseIPv4, prefixToMask, readU32, MAX_FRAME, KEEPALIVE_S, SEED_MTU } from '../../protocol/index.js';
import type { Clock, Connect, Failure, Socket, Tun } from './types.js';

export type StateName = 'idle' | 'connecting' | 'ready' | 'down' | 'closed';

export interface Route {
  network: string;
  prefix: number;
}

/** What onState reports. Fields beyond `state` are set as they apply. */
export interface StateInfo {
  state: StateName;
  /** ready: the assigned address and the configuration that came with it. */
  address?: string;
  prefix?: number;
  netmask?: string;
  /** The server's VPN address; null when a seed server did not say. */
  gateway?: string | null;
  mtu?: number;
  keepalive?: number;
  routes?: Route[];
  /** 'simplevpn' when the server spoke the extension, 'seed' otherwise. */
  server?: 'simplevpn' | 'seed';
  /** down: why, the server's refusal code (0 if none), ms until the next attempt. */
  reason?: string;
  code?: number;
  retryIn?: number;
  /** down: the kind of failure, when the transport (or the SDK) recognised one. */
  failure?: Failure;
}

export interface ClientOptions {
  /** Opens a connection to the server. */
  connect: Connect;
  /** Receives the packets that arrive over the VPN. */
  tun: Tun;
  /** Defaults to the engine's setTimeout and Date.now. */
  clock?: Clock;
  /** A static address to ask for; omitted, the server picks one. */
  address?: string;
  /** Seconds without hearing from the server before sending a keepalive (15, as the seed). A value the server pushes wins. */
  keepalive?: number;
  /** Seconds to wait for the connection, the address reply, or any answer after a keepalive (10). */
  timeout?: number;
  /** Reconnect delay bounds in seconds (1 and 60). */
  minBackoff?: number;
  maxBackoff?: number;
  /** Speak only the seed protocol: a byte-exact 20-byte request, no extension. */
  seed?: boolean;
  /** A name the server logs for this client. */
  name?: string;
  /** The MTU to ask the server for: the largest packet this side sends and takes. Omitted,
   * the server grants 1500, what the seed devices use. */
  mtu?: number;
  /** Further request TLVs (credentials, for example), asked for at each connection. */
  requestTlvs?: () => Tlv[];
  /** Largest frame accepted from the server (65535). */
  maxFrame?: number;
  onState?: (info: StateInfo) => void;
  random?: () => number;
}

export interface ClientStats {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  /** Packets not sent: the socket was full, the link was not ready, or the packet was malformed. */
  dropped: number;
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
  return { now: () => Date.now(), setTimeout: (f, ms) => g.setTimeout(f, ms), clearTimeout: (h) => g.clearTimeout(h) };
};

export class Client {
  readonly stats: ClientStats = { rxPackets: 0, rxBytes: 0, txPackets: 0, txBytes: 0, dropped: 0, keepalives: 0, connects: 0 };
  /** The latest state report. */
  info: StateInfo = { state: 'idle' };
  /** The assigned address as a number, 0 before the first assignment. */
  address = 0;
  /** The lease token of the last extension reply, presented on reconnect. */
  lease: Uint8Array | null = null;

  private readonly o: ClientOptions;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly userAddress: number;
  private readonly maxFrame: number;
  private readonly timeoutMs: number;
  private keepaliveMs: number;
  private phase = IDLE;
  private sock: Socket | null = null;
  private gen = 0; // bumps on every new or dropped connection; stale callbacks compare it
  private framer = new Framer();
  private timer: unknown = null;
  private lastRx = 0;
  private kaOut = false;
  private want = 0; // the address the next request asks for
  private extServer = false; // the last reply was an extension reply

  constructor(options: ClientOptions) {
    this.o = options;
    this.clock = options.clock || defaultClock();
    this.backoff = new Backoff((options.minBackoff ?? 1) * 1000, (options.maxBackoff ?? 60) * 1000, options.random);
    this.maxFrame = options.maxFrame || MAX_FRAME;
    this.timeoutMs = (options.timeout ?? 10) * 1000;
    this.keepaliveMs = (options.keepalive ?? KEEPALIVE_S) * 1000;
    const a = options.address ? parseIPv4(options.address) : 0;
    if (a < 0 || a === ALL) throw new Error('invalid address: ' + options.address);
    this.want = this.userAddress = a;
  }

  start(): void {
    if (this.phase === IDLE) this.open();
  }

  /**
   * Sends an IP packet from this side into the VPN, or several packets back to back in one
   * buffer (a batch read from a tun), in one socket write. Returns false when it was dropped:
   * not connected, the socket is full, or the bytes are not whole well-formed frames (they
   * would desynchronise the stream). The transport may keep `data` until it is sent.
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
    if (n === 0 || !this.sock!.write(data)) {
      this.stats.dropped += n || 1;
      return false;
    }
    this.stats.txPackets += n;
    this.stats.txBytes += len;
    return true;
  }

  /** Stops for good: closes the connection and every timer. */
  close(): void {
    if (this.phase === CLOSED) return;
    this.phase = CLOSED;
    this.drop();
    this.emit({ state: 'closed' });
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
        onWritable() {},
        onClose: (why, failure) => {
          if (gen !== this.gen) return;
          // A seed server refuses by closing (end of stream) during the request; a server
          // that spoke the extension refuses with a message, and an error (a TLS alert, a
          // reset) is a lost connection whoever the server is.
          const refused = !failure && this.phase === REQUESTING && !this.extServer && (!why || why === 'end of stream');
          this.lost(
            failure ? why || failure.kind : refused ? 'connection closed during the address request (a seed server refuses so)' : 'connection closed' + (why ? ': ' + why : ''),
            refused ? REFUSE_IN_USE : 0,
            failure,
          );
        },
      });
    } catch (err) {
      return this.lost('could not connect: ' + err);
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
      const tlvs: Tlv[] = o.requestTlvs ? o.requestTlvs() : [];
      if (o.name) tlvs.push([T_CLIENT, ascii(o.name)]);
      if (o.mtu) tlvs.push([T_MTU, u16(o.mtu)]);
      if (this.lease) tlvs.push([T_LEASE, this.lease]);
      msg = extMessage(this.want, ANY, KIND_REQUEST, tlvs);
    }
    this.sock!.write(msg);
  }

  private data(chunk: Uint8Array, gen: number): void {
    // A TLS alert record (0x15) where the reply should begin: a TLS port. No IP frame
    // starts with that byte, and a seed server never sends one.
    if (this.phase === REQUESTING && chunk[0] === 0x15 && !this.framer.pending)
      return this.lost('the server expects TLS on this port', 0, { kind: 'expects_tls' });
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
        this.o.tun.write(b, o, n);
      } else {
        this.reply(b.subarray(o, o + n));
      }
      if (gen !== this.gen) return; // closed or reconnecting from inside a callback
    }
    if (f.error !== null) this.lost('protocol error from server: ' + f.error);
  }

  private reply(p: Uint8Array): void {
    const kind = extKind(p);
    if (kind === KIND_REFUSAL) {
      const r = readRefusal(p);
      this.lease = null;
      return this.lost('refused by server: ' + (r.text || 'code ' + r.code), r.code || REFUSE_IN_USE);
    }
    const addr = readU32(p, DST);
    if (p[0] >> 4 !== 4 || addr === ANY || addr === ALL) return this.lost('invalid reply to the address request');
    // A seed server echoes our request with only the destination rewritten: its TLVs are
    // our own, so only a KIND_REPLY carries the server's configuration.
    const c: Config = kind === KIND_REPLY ? readConfig(p) : { routes: [] };
    this.address = addr;
    this.extServer = kind === KIND_REPLY;
    if (!this.userAddress) this.want = addr;
    this.lease = c.lease || null;
    this.keepaliveMs = (c.keepalive || this.o.keepalive || KEEPALIVE_S) * 1000;
    if (c.idleTimeout) this.keepaliveMs = Math.min(this.keepaliveMs, (c.idleTimeout * 1000) / 2);
    this.phase = READY;
    this.backoff.reset();
    const prefix = c.prefix ?? SEED_PREFIX;
    this.arm(this.keepaliveMs);
    this.emit({
      state: 'ready',
      address: formatIPv4(addr),
      prefix,
      netmask: formatIPv4(prefixToMask(prefix)),
      gateway: c.gateway === undefined ? null : formatIPv4(c.gateway),
      mtu: c.mtu || SEED_MTU,
      keepalive: this.keepaliveMs / 1000,
      routes: c.routes.map(([n, len]) => ({ network: formatIPv4(n), prefix: len })),
      server: kind === KIND_REPLY ? 'simplevpn' : 'seed',
    });
  }

  /** The connection is gone or unusable: tear it down and schedule the next attempt. */
  private lost(reason: string, code = 0, failure?: Failure): void {
    const wasRequesting = this.phase === REQUESTING;
    this.drop();
    // Our old address was refused: ask for any address next time, unless the user chose it.
    if (wasRequesting && code && !this.userAddress) this.want = 0;
    const delay = this.backoff.next();
    this.phase = WAITING;
    this.arm(delay);
    this.emit({ state: 'down', reason, code, retryIn: delay, failure });
  }

  private drop(): void {
    const s = this.sock;
    this.sock = null;
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
      if (idle >= ka + to) return this.lost('no answer to keepalive within ' + to / 1000 + ' s');
      if (idle < ka) {
        this.kaOut = false;
        return this.arm(ka - idle);
      }
      if (!this.kaOut) {
        this.kaOut = true;
        this.stats.keepalives++;
        this.sock!.write(KEEPALIVE);
      }
      return this.arm(ka + to - idle);
    }
    if (this.phase === CONNECTING || this.phase === REQUESTING) {
      if (idle >= to) return this.lost((this.phase === CONNECTING ? 'could not connect' : 'no reply to the address request') + ' within ' + to / 1000 + ' s');
      this.arm(to - idle);
    }
  };

  private emit(info: StateInfo): void {
    this.info = info;
    if (this.o.onState) this.o.onState(info);
  }
}
