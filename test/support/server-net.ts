// Loopback harness for the server tests: a server on 127.0.0.1 port 0 without a tun, raw
// byte-level clients (seed devices, hostile peers), SDK clients over real TCP, bounded waits
// and packet builders. Everything a test opens through a Harness is closed by withServer().

import net from 'node:net';
import { Client, type ClientOptions, type DownInfo, type ReadyInfo, type StateInfo, type StateName } from '../../client-sdk/src/client.js';
import { KIND_REQUEST, controlMessage, extMessage, type Tlv, Framer, parseIPv4, writeU32 } from '../../protocol/index.js';
import { tcpConnect } from '../../client-sdk/node/tcp.js';
import { type CreateServerOptions, type ServerTun, type VpnServer, createServer } from '../../server/src/server.js';
import { clientAt, internals, sessionAt } from '../../server/src/internals.js';
import { openServerHub } from '../../linux/server-hub.js';

// ---- waiting ------------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` until it holds; rejects after `ms` with `what` and, if given, the state. */
export async function waitFor(cond: () => boolean, ms: number, what: string, state?: () => unknown): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (cond()) return;
    if (Date.now() > end) {
      const s = state ? ' (state: ' + JSON.stringify(state()) + ')' : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${s}`);
    }
    await sleep(5);
  }
}

/** Resolves with the first `name` event of `em` that `match` accepts; rejects after `ms`. */
export function nextEvent<T = any>(
  em: { on(n: string, f: (x: T) => void): unknown; off(n: string, f: (x: T) => void): unknown },
  name: string,
  ms: number,
  match: (x: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      em.off(name, on);
      reject(new Error(`timed out after ${ms} ms waiting for event ${name}`));
    }, ms);
    const on = (x: T) => {
      if (!match(x)) return;
      clearTimeout(timer);
      em.off(name, on);
      resolve(x);
    };
    em.on(name, on);
  });
}

// ---- addresses and bytes ----------------------------------------------------------------

export function ip(s: string): number {
  const n = parseIPv4(s);
  if (n < 0) throw new Error('bad address in test: ' + s);
  return n;
}

export const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

export const bytes = (spaced: string): Uint8Array => Uint8Array.from(spaced.trim().split(/\s+/), (h) => parseInt(h, 16));

export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/** The seed's keepalive, exactly as in the facts file. */
export const SEED_KEEPALIVE = bytes('45 14 00 00 00 00 00 00 40 00 00 00 ff ff ff ff ff ff ff ff');
/** The seed's dynamic request, exactly as in the facts file. */
export const SEED_DYNAMIC = bytes('45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00 00 00 00 00');

/** A seed static request for `addr`: source = the address, destination 0. */
export function seedStatic(addr: number): Uint8Array {
  return controlMessage(addr, 0);
}

/** An extension (new-format) request, as the SDK sends it. */
export function extRequest(addr = 0, tlvs: Tlv[] = []): Uint8Array {
  return extMessage(addr, 0, KIND_REQUEST, tlvs);
}

/** Small deterministic PRNG (xorshift32), so failures replay. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/**
 * A well-formed IPv4 packet: version 4, IHL `ihl`, total length `total` (>= ihl * 4), TTL 64,
 * protocol 17, the given addresses, payload from `rand` (or a pattern).
 */
export function ipPacket(src: number, dst: number, total: number, rand?: () => number, ihl = 5, proto = 17): Uint8Array {
  if (total < ihl * 4) throw new Error('ipPacket: total length below the header length');
  const p = new Uint8Array(total);
  if (rand) for (let i = 0; i < total; i++) p[i] = (rand() * 256) | 0;
  else for (let i = 0; i < total; i++) p[i] = (i * 7 + 3) & 255;
  p[0] = 0x40 | ihl;
  p[1] = 0;
  p[2] = total >> 8;
  p[3] = total & 255;
  p[6] = 0x40; // don't fragment
  p[7] = 0;
  p[8] = 64;
  p[9] = proto;
  writeU32(p, 12, src);
  writeU32(p, 16, dst);
  return p;
}

// ---- raw clients ----------------------------------------------------------------------------

/** A plain TCP client that records every byte it receives. */
export class RawClient {
  received = 0;
  consumed = 0;
  closed = false;
  error: string | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private fresh: Buffer[] = []; // received, not yet joined into buf
  private readonly framer = new Framer();
  /** Frames parsed from everything received, in order (copies). */
  readonly frames: Uint8Array[] = [];

  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.received += d.length;
      this.fresh.push(d);
      this.framer.push(d);
      for (let f; (f = this.framer.next()) !== null; ) this.frames.push(Uint8Array.from(f));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      this.error = e.code ?? e.message;
    });
    sock.on('close', () => {
      this.closed = true;
    });
  }

  /** A raw connection to the server on 127.0.0.1, from `localAddress` (another loopback address) if given. */
  static connect(port: number, opts: { paused?: boolean; localAddress?: string } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
      const c = new RawClient(sock);
      if (opts.paused) sock.pause();
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error('raw client: connect timed out'));
      }, 5000);
      sock.once('connect', () => {
        clearTimeout(t);
        resolve(c);
      });
      sock.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  write(b: Uint8Array): boolean {
    return this.sock.write(b);
  }

  /** Writes, waiting for 'drain' when the socket's buffer is full (bounded). */
  async writeAll(b: Uint8Array, ms = 10_000): Promise<void> {
    if (this.sock.write(b)) return;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('raw client: drain timed out')), ms);
      const done = () => {
        clearTimeout(t);
        this.sock.off('drain', done);
        this.sock.off('close', done);
        resolve();
      };
      this.sock.on('drain', done);
      this.sock.on('close', done);
    });
  }

  /** Every byte received so far. */
  all(): Buffer {
    if (this.fresh.length) {
      this.buf = Buffer.concat([this.buf, ...this.fresh]);
      this.fresh = [];
    }
    return this.buf;
  }

  /** The next `n` unread bytes, waiting up to `ms` for them. */
  async read(n: number, ms = 3000): Promise<Uint8Array> {
    await waitFor(() => this.received - this.consumed >= n || this.closed, ms, `${n} bytes from the server`, () => ({
      have: this.received - this.consumed,
    }));
    if (this.received - this.consumed < n)
      throw new Error(`connection closed after ${this.received - this.consumed} of ${n} expected bytes (error: ${this.error})`);
    const out = Uint8Array.from(this.all().subarray(this.consumed, this.consumed + n));
    this.consumed += n;
    return out;
  }

  /** Waits until the server closes the connection. */
  waitClosed(ms = 3000): Promise<void> {
    return waitFor(() => this.closed, ms, 'the server to close the connection');
  }

  /**
   * Sends a seed request (dynamic, or static for `addr`) and returns the granted address. The
   * reply is taken off `frames`, which then holds only what arrived after it.
   */
  async requestSeed(addr = 0): Promise<number> {
    const before = this.frames.length;
    this.write(addr ? seedStatic(addr) : SEED_DYNAMIC);
    const r = await this.read(20);
    if (this.frames.length <= before || !Buffer.from(this.frames[before]).equals(Buffer.from(r)))
      throw new Error('requestSeed: the reply is not the next frame');
    this.frames.splice(before, 1);
    return Buffer.from(r).readUInt32BE(16);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

// ---- SDK clients ----------------------------------------------------------------------------

/** A state report with every variant's fields readable, for assertions (undefined where absent). */
export type AnyState = StateInfo & Partial<Omit<ReadyInfo, 'state'>> & Partial<Omit<DownInfo, 'state'>>;

/** An SDK client over real TCP that records its states and the packets it receives. */
export class SdkPeer {
  readonly client: Client;
  readonly states: StateInfo[] = [];
  readonly packets: Uint8Array[] = [];

  constructor(port: number, opts: Partial<ClientOptions> = {}) {
    this.client = new Client({
      connect: tcpConnect({ host: '127.0.0.1', port }),
      // A copy: the chunk is the socket's receive buffer, reused for the next read (Buffer#slice would not copy).
      tun: { write: (b, o, n) => void this.packets.push(Uint8Array.prototype.slice.call(b, o, o + n)) },
      // Refusal tests look at the first 'down': no reconnect during a test.
      minBackoff: 60,
      maxBackoff: 60,
      ...opts,
      onState: (s) => {
        this.states.push(s);
        opts.onState?.(s);
      },
    });
  }

  start(): this {
    this.client.start();
    return this;
  }

  get state(): AnyState {
    return this.client.info;
  }

  /** The address last assigned, as a number (0 before the first). */
  get address(): number {
    const a = this.client.address;
    return a === null ? 0 : parseIPv4(a);
  }

  /** The first report of state `name`. */
  async waitState<N extends StateName>(name: N, ms = 3000): Promise<Extract<StateInfo, { state: N }>> {
    await waitFor(() => this.states.some((s) => s.state === name), ms, `SDK client state ${name}`, () => this.states);
    return this.states.find((s): s is Extract<StateInfo, { state: N }> => s.state === name)!;
  }

  /** Starts and waits until ready; returns the ready info. */
  async ready(ms = 3000): Promise<ReadyInfo> {
    this.start();
    return this.waitState('ready', ms);
  }

  close(): void {
    this.client.close();
  }
}

// ---- the server ---------------------------------------------------------------------------

export class Harness {
  private readonly closers: Array<() => unknown> = [];

  constructor(
    readonly server: VpnServer,
    readonly port: number,
  ) {}

  /** Closes `c` (by its close() or destroy()) at the end of the test. */
  track<T extends { close?: () => unknown; destroy?: () => unknown }>(c: T): T {
    this.closers.push(() => (c.close ? c.close() : c.destroy!()));
    return c;
  }

  async raw(opts: { paused?: boolean } = {}): Promise<RawClient> {
    const c = await RawClient.connect(this.port, opts);
    this.closers.push(() => c.destroy());
    return c;
  }

  sdk(opts: Partial<ClientOptions> = {}): SdkPeer {
    const p = new SdkPeer(this.port, opts);
    this.closers.push(() => p.close());
    return p;
  }

  /** Sessions the server holds now (connected, with or without an address). */
  get sessions(): number {
    return this.server.clients().length;
  }

  // The server's insides, through the test-only accessor (server/src/internals.ts).

  get metrics() {
    return internals(this.server).metrics;
  }

  /** The in-memory lease store's address pool. */
  get pool() {
    return internals(this.server).leases.pool;
  }

  /** The switch: lookup(address), size (addresses bound). */
  get switch() {
    return internals(this.server).switch;
  }

  get auth() {
    return internals(this.server).auth;
  }

  /** The tun device the server opened, or null. */
  get tunDevice(): ServerTun | null {
    return internals(this.server).tun?.device ?? null;
  }

  /** The session holding `address`. */
  sessionAt(address: number) {
    return sessionAt(this.server, address);
  }

  /** The connection (control side) holding `address`. */
  clientAt(address: number) {
    return clientAt(this.server, address);
  }

  async close(): Promise<void> {
    for (const c of this.closers.reverse()) {
      try {
        c();
      } catch {}
    }
    await this.server.close();
  }
}

/**
 * Starts a server on 127.0.0.1:0 without a tun, runs `fn`, then closes everything. With
 * SIMPLEVPN_TEST_HUB=1 in the environment its plain-TCP sessions take the native switching
 * path (linux/native/hub.c), so that every server test can run on both paths.
 */
export async function withServer(options: CreateServerOptions, fn: (h: Harness) => Promise<void>): Promise<void> {
  const hub = process.env.SIMPLEVPN_TEST_HUB === '1' ? { openHub: openServerHub } : {};
  // Every test client comes from 127.0.0.1: per-source admission limits are off unless a test sets them.
  const server = createServer({ tun: false, maxPerSource: 0, connRate: 0, ...hub, ...options, host: '127.0.0.1', port: 0 });
  await server.listen();
  const h = new Harness(server, server.port);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1 (for listeners that refuse port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
