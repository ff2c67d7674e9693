// WebSocket (RFC 6455) on the listeners the server already has: the plain port (ws) and,
// after the TLS handshake, the TLS port (wss). A connection is a WebSocket when its first
// bytes are an HTTP request; anything else is the protocol's own stream, as a 2013 device
// sends it. Inside the WebSocket the stream is byte for byte the one a TCP client sends
// and receives: each binary message carries its next bytes, and message boundaries mean
// nothing.
//
// Until its first bytes are read a connection is an Opening: listed with the server's
// clients, closed at the handshake timeout. Then it becomes a session over the socket
// itself (the bytes read so far handed on), or, for an HTTP request, it is answered: an
// upgrade at the configured path, an HTTP error anywhere else, and the error closes it.
// The session over a WebSocket gets a WsSocket: the few members of a net.Socket that the
// session uses, over the `ws` package's WebSocket, so the data side does not change.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ResolvedConfig } from '../config/config.js';
import { type AdmitRefusal, sourceOf } from './limits.js';
import { MAX_HEAD, type HttpRefusal, type HttpRequest, headEnd, listsToken, parseHead, response, single } from './http.js';
import type { TrustedProxies } from './proxy.js';
import { OWNER } from './transport.js';
import { type FrameReader, type SocketListener, headSize, takeOverReading, writeHead } from '../../../common/ws-frames.js';

/** Largest WebSocket message taken from a client, bytes (the sum of its fragments). */
export const MAX_MESSAGE = 256 * 1024;
/** Fragments of one message, at most. */
const MAX_FRAGMENTS = 1024;
/** What a client's frames must be (common/ws-frames.ts). */
const CLIENT_FRAMES = { masked: true, maxMessage: MAX_MESSAGE, maxFragments: MAX_FRAGMENTS };

/** How long a refused or closing connection may take to read its answer. */
const LINGER_MS = 2000;

/**
 * What the first bytes of a connection are: an HTTP request (a method, upper-case letters,
 * and a space), the protocol's stream (anything else: an IPv4 header starts 0x4_, a TLS
 * record 0x16), or not known yet (only letters so far).
 */
export function classify(b: Uint8Array, n = b.length): 'http' | 'stream' | 'more' {
  for (let i = 0; i < n && i <= 16; i++) {
    const c = b[i];
    if (c === 0x20) return i >= 3 ? 'http' : 'stream';
    if (c < 0x41 || c > 0x5a) return 'stream';
  }
  return n > 16 ? 'stream' : 'more';
}

/** A connection whose framing is not known yet. */
export interface Opening {
  readonly id: number;
  readonly kind: 'tcp' | 'tls';
  /** The connection (a TLSSocket on the TLS port): what its peer's certificate says. */
  readonly socket: net.Socket;
  /** The peer's remote end (limits.ts remoteOf). */
  readonly remote: string;
  /** When it was accepted (ms). */
  readonly since: number;
}

/** The refusals an HTTP request can earn, as counted in simplevpn_refusals_total. */
export type HttpRefusalReason = 'http_bad_request' | 'http_not_found' | 'http_forbidden_origin' | 'http_head_too_large';

/** What the WebSocket transport tells the server. */
export interface WebSocketHooks {
  /** The first bytes are the protocol's stream: `head`, what has been read of it, goes to the session. */
  stream(o: Opening, socket: net.Socket, head: Buffer): void;
  /**
   * The upgrade is done: `socket` carries the stream. `client`: the client's remote end,
   * forwarded by a trusted proxy (`via`, the proxy's) or the peer's.
   */
  upgraded(o: Opening, socket: net.Socket, kind: 'ws' | 'wss', client: string, via: string | undefined, origin: string | undefined): void;
  /**
   * Per-source limits for a client known only now (behind a trusted proxy); its count is
   * released when `socket` closes. A refusal is counted and logged by the server.
   */
  admitLate(ip: string, remote: string, socket: net.Socket): AdmitRefusal | null;
  /** An HTTP request refused: count and log it (ended() follows). */
  refused(o: Opening, reason: HttpRefusalReason, detail: string): void;
  /** The opening ended before it became a session. */
  ended(o: Opening, code: 'refused' | 'handshake_timeout' | 'client_closed' | 'socket_error' | 'shutdown', detail: string): void;
}

const OPEN = 1;
/** Queued bytes sent at the uncork, without waiting for the end of the turn: a 64 KiB message. */
const SEND_AT = 65536;

/**
 * A WebSocket as the session sees its socket: 'data' for the stream's bytes as they come
 * (common/ws-frames.ts reads the client's frames off the socket; `ws` keeps the handshake,
 * pings, pongs and the closing handshake), 'error' and 'close'; write() as a binary message;
 * writableLength what the socket below holds, what `ws` holds back and what is queued here;
 * end() with a last message and the closing handshake; destroy().
 *
 * What the session writes between cork() and uncork() (what one chunk of the data path sends
 * this client) is queued and joined into one message, its header and their bytes in one
 * writev; the queue is sent at the uncork once it holds SEND_AT bytes, else at the end of the
 * turn of the event loop, so that the small chunks of a read burst (16 KiB ones over TLS: a
 * TLS record each) leave as one message and one write rather than one each. SEND_AT bounds
 * what waits: the send-queue cap counts it, and a turn can read far more than the cap.
 */
export class WsSocket extends EventEmitter {
  private readonly reader: FrameReader;
  private corked = false;
  /** Writes not sent yet: one message when they are. */
  private readonly queued: Uint8Array[] = [];
  private queuedBytes = 0;
  /** The queue's send is due at the end of this turn (setImmediate). */
  private due = false;

  /** `wsRead`: ws's own reading of the socket (its 'data' listeners): it gets the control frames alone, whole. */
  constructor(
    readonly ws: WebSocket,
    private readonly raw: net.Socket,
    wsRead: SocketListener[],
  ) {
    super();
    this.reader = takeOverReading(
      raw,
      wsRead,
      CLIENT_FRAMES,
      (bytes) => this.emit('data', bytes),
      (status, message, code) => {
        // As ws does for a bad frame: the close frame first, then the error that ends the session.
        ws.close(status);
        this.emit('error', Object.assign(new Error(message), { code }));
      },
    );
    ws.on('error', (err: Error) => this.emit('error', err));
    ws.on('close', () => {
      this.reader.stop();
      this.emit('close');
    });
  }

  get remoteAddress(): string | undefined {
    return this.raw.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.raw.remotePort;
  }

  get writableLength(): number {
    return this.ws.bufferedAmount + this.queuedBytes;
  }

  /** Over TLS (wss): writableLength then lags as a TLSSocket's does (turn-writes.ts). */
  get encrypted(): boolean {
    return (this.raw as { encrypted?: boolean }).encrypted === true;
  }

  /** The socket under the WebSocket (a TLSSocket over wss): turn-writes.ts reads its TCP handle's queue. */
  get wire(): net.Socket {
    return this.raw;
  }

  get destroyed(): boolean {
    return this.raw.destroyed;
  }

  setNoDelay(): this {
    return this; // ws sets it on the socket below
  }

  cork(): void {
    this.corked = true;
  }

  uncork(): void {
    this.corked = false;
    if (this.queuedBytes >= SEND_AT) this.sendQueued();
    else if (this.queued.length > 0 && !this.due) {
      this.due = true;
      setImmediate(sendDue, this);
    }
  }

  write(data: Uint8Array): boolean {
    if (this.ws.readyState !== OPEN || data.length === 0) return true; // as ws.send: nothing after the close
    if (this.corked || this.queued.length > 0) {
      this.queued.push(data);
      this.queuedBytes += data.length;
    } else {
      const raw = this.raw;
      raw.cork();
      raw.write(frameHead(data.length));
      raw.write(data);
      raw.uncork();
    }
    return true;
  }

  /** The end of the turn: what is still queued. */
  sendDue(): void {
    this.due = false;
    if (this.queued.length > 0 && !this.raw.destroyed) this.sendQueued();
  }

  /** What is queued: one message. */
  private sendQueued(): void {
    const q = this.queued;
    const total = this.queuedBytes;
    this.queuedBytes = 0;
    if (this.ws.readyState === OPEN) {
      const raw = this.raw;
      raw.cork();
      raw.write(frameHead(total));
      for (let i = 0; i < q.length; i++) raw.write(q[i]);
      raw.uncork();
    }
    // The socket keeps the chunks, not the array: it serves the next message.
    q.length = 0;
  }

  end(last?: Uint8Array): this {
    this.corked = false;
    if (this.queued.length > 0) this.sendQueued();
    if (last !== undefined) this.write(last);
    this.ws.close(1000);
    return this;
  }

  destroy(): this {
    this.reader.stop();
    this.queued.length = 0;
    this.queuedBytes = 0;
    this.ws.terminate();
    return this;
  }

  /** A net.Socket to the session: it uses only the members above. */
  asSocket(): net.Socket {
    return this as unknown as net.Socket;
  }
}

const sendDue = (s: WsSocket): void => s.sendDue();

/** The header of a server's binary frame of `length` bytes (unmasked, FIN set). */
function frameHead(length: number): Buffer {
  const h = Buffer.allocUnsafe(headSize(length, false));
  writeHead(h, length, false);
  return h;
}

export class WebSocketTransport {
  private readonly wss: WebSocketServer;
  private readonly openings = new Set<Pending>();
  private readonly live = new Set<WsSocket>();
  private pinger: NodeJS.Timeout | null = null;
  private readonly origins: Set<string>;

  constructor(
    readonly cfg: ResolvedConfig,
    readonly proxies: TrustedProxies,
    readonly hooks: WebSocketHooks,
  ) {
    this.origins = new Set(cfg.ws?.origins ?? []);
    // Options of ws 8.23 that its types do not list yet go in loosely typed.
    const more: object = { closeTimeout: LINGER_MS, maxFragments: MAX_FRAGMENTS };
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: MAX_MESSAGE,
      skipUTF8Validation: true,
      handleProtocols: () => false,
      ...more,
    });
  }

  /** A new connection: read its first bytes. */
  begin(socket: net.Socket, kind: 'tcp' | 'tls', remote: string, id: number): void {
    const p = new Pending(this, socket, kind, remote, id);
    this.openings.add(p);
  }

  /** Connections still opening. */
  list(): Iterable<Opening> {
    return this.openings;
  }

  get size(): number {
    return this.openings.size;
  }

  /** Closes openings older than the handshake timeout. */
  sweep(now: number): void {
    const hs = this.cfg.handshakeTimeoutMs;
    for (const p of this.openings) if (now - p.since >= hs) p.close('handshake_timeout', p.http ? `the HTTP request was not complete within ${hs / 1000} s` : `nothing received within ${hs / 1000} s`);
  }

  /** Closes every opening and stops the pings; WebSocket sessions are the server's to end. */
  close(): void {
    for (const p of [...this.openings]) p.close('shutdown', 'server shutting down');
    this.stopPings();
  }

  // ---- for Pending ----

  done(p: Pending): void {
    this.openings.delete(p);
  }

  /** Answers a request: the upgrade, or the HTTP error that closes the connection. */
  answer(p: Pending, req: HttpRequest | HttpRefusal, rest: Buffer): void {
    const ws = this.cfg.ws!;
    if ('status' in req) return this.refuse(p, 'http_bad_request', req);
    if (req.path !== ws.path) return this.refuse(p, 'http_not_found', { status: 404, why: `${req.method} ${clip(req.path)}: not the WebSocket path (${ws.path})` });
    const problem = this.upgradeProblem(req);
    if (problem) return this.refuse(p, 'http_bad_request', { status: 400, why: problem }, problem.includes('Version') ? { 'Sec-WebSocket-Version': '13' } : {});
    const origin = single(req, 'origin');
    if (origin === null) return this.refuse(p, 'http_bad_request', { status: 400, why: 'more than one Origin header' });
    if (origin && this.origins.size > 0 && !this.origins.has(origin.toLowerCase()))
      return this.refuse(p, 'http_forbidden_origin', { status: 403, why: `origin ${clip(origin)} is not allowed (--ws-origin)` });
    const peer = p.peerIp;
    const { ip, forwarded } = this.proxies.client(peer, req.headers.get('x-forwarded-for'), req.headers.get('forwarded'));
    const client = forwarded ? (ip.includes(':') ? `[${ip}]` : ip) : p.remote;
    if (this.proxies.has(peer)) {
      // Counted under the client's address, not the proxy's (the server has counted and logged a refusal).
      const refused = this.hooks.admitLate(ip, client, p.socket);
      if (refused) return p.answerAndClose({ status: 429, why: refused }, { 'Retry-After': '1' }, refused);
    }
    p.upgrade(this.wss, req, rest, client, forwarded ? p.remote : undefined, origin || undefined);
  }

  /** Refuses an HTTP request: counted and logged, answered, closed. */
  refuse(p: Pending, reason: HttpRefusalReason, r: HttpRefusal, headers: Record<string, string> = {}): void {
    this.hooks.refused(p, reason, `${r.status}: ${r.why}`);
    p.answerAndClose(r, headers, reason);
  }

  /** What makes `req` not a WebSocket handshake (RFC 6455 §4.2.1), or null. */
  private upgradeProblem(req: HttpRequest): string | null {
    if (req.method !== 'GET') return `${clip(req.method)}: a WebSocket upgrade is a GET`;
    if (!listsToken(req, 'upgrade', 'websocket')) return 'not a WebSocket upgrade (Upgrade: websocket)';
    if (!listsToken(req, 'connection', 'upgrade')) return 'not a WebSocket upgrade (Connection: Upgrade)';
    if (single(req, 'sec-websocket-version') !== '13') return 'Sec-WebSocket-Version is not 13';
    const key = single(req, 'sec-websocket-key');
    if (!key || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'no valid Sec-WebSocket-Key';
    return null;
  }

  /** A WebSocket session started: it is pinged at the keepalive interval while it lasts. */
  started(s: WsSocket): void {
    this.live.add(s);
    s.ws.once('close', () => {
      this.live.delete(s);
      if (this.live.size === 0) this.stopPings();
    });
    if (this.pinger === null) {
      this.pinger = setInterval(() => {
        for (const x of this.live) x.ws.ping();
      }, this.cfg.keepalive * 1000);
      this.pinger.unref();
    }
  }

  private stopPings(): void {
    if (this.pinger !== null) clearInterval(this.pinger);
    this.pinger = null;
  }
}

/** A printable, bounded copy of client text for a log line. */
const clip = (s: string): string => (s.length > 64 ? s.slice(0, 64) + '...' : s);

/** One connection until its first bytes, or its HTTP request, are read. */
class Pending implements Opening {
  readonly since = Date.now();
  readonly peerIp: string;
  /** The first bytes were an HTTP request: reading its head. */
  http = false;
  private buf: Buffer | null = null;
  private searched = 0;
  private finished = false;

  constructor(
    private readonly t: WebSocketTransport,
    readonly socket: net.Socket,
    readonly kind: 'tcp' | 'tls',
    readonly remote: string,
    readonly id: number,
  ) {
    this.peerIp = sourceOf(socket.remoteAddress ?? remote.replace(/^\[?(.*?)\]?:\d+$/, '$1'));
    (socket as Owned)[OWNER] = this;
    socket.on('data', pendingData);
    socket.on('error', pendingError);
    socket.on('end', pendingEnd);
    socket.on('close', pendingClose);
  }

  onData(chunk: Buffer): void {
    const b = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.http) {
      const kind = classify(b);
      if (kind === 'more') {
        this.buf = b;
        return;
      }
      if (kind === 'stream') return this.stream(b);
      this.http = true;
    }
    const end = headEnd(b, Math.min(b.length, MAX_HEAD), this.searched - 3);
    if (end === -2) return this.t.refuse(this, 'http_bad_request', { status: 400, why: 'a bare LF in the request head (lines end with CRLF)' });
    if (end < 0) {
      if (b.length >= MAX_HEAD) return this.t.refuse(this, 'http_head_too_large', { status: 431, why: `a request head of more than ${MAX_HEAD} bytes` });
      this.buf = b;
      this.searched = b.length;
      return;
    }
    this.buf = null;
    this.t.answer(this, parseHead(b.subarray(0, end)), b.subarray(end));
  }

  /** Stops watching the socket; the opening is over. */
  private detach(): void {
    const s = this.socket as Owned;
    s.off('data', pendingData);
    s.off('error', pendingError);
    s.off('end', pendingEnd);
    s.off('close', pendingClose);
    s[OWNER] = undefined;
    this.finished = true;
    this.t.done(this);
  }

  /** Closes it before it became anything. */
  close(code: 'handshake_timeout' | 'client_closed' | 'socket_error' | 'shutdown', detail: string): void {
    if (this.finished) return;
    this.detach();
    this.socket.destroy();
    this.t.hooks.ended(this, code, detail);
  }

  private stream(head: Buffer): void {
    this.detach();
    const t = this.t;
    if (t.proxies.has(this.peerIp)) {
      const refused = t.hooks.admitLate(this.peerIp, this.remote, this.socket);
      if (refused) {
        this.socket.destroy();
        return t.hooks.ended(this, 'refused', refused);
      }
    }
    t.hooks.stream(this, this.socket, head);
  }

  /**
   * Answers with an HTTP error and closes: what the client sends meanwhile is read and
   * dropped (closing with unread bytes would reset the connection, and the client could
   * lose the answer), for at most LINGER_MS.
   */
  answerAndClose(r: HttpRefusal, headers: Record<string, string>, detail: string): void {
    this.detach();
    const s = this.socket;
    this.t.hooks.ended(this, 'refused', detail);
    if (s.destroyed) return;
    s.on('error', () => {});
    s.on('data', () => {});
    // The log says which path was asked for and which is served; the answer does not give the path away.
    s.end(response(r.status, r.status === 404 ? 'not found' : r.why, headers));
    const timer = setTimeout(() => s.destroy(), LINGER_MS);
    s.once('close', () => clearTimeout(timer));
  }

  upgrade(wss: WebSocketServer, req: HttpRequest, rest: Buffer, client: string, via: string | undefined, origin: string | undefined): void {
    const s = this.socket;
    this.detach();
    if (!s.readable || !s.writable) {
      s.destroy();
      return this.t.hooks.ended(this, 'client_closed', 'end of stream during the upgrade');
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = v.join(', ');
    const like = { method: req.method, url: req.target, headers, socket: s };
    let took = false;
    const before = new Set(s.listeners('data'));
    wss.handleUpgrade(like as never, s, rest, (ws: WebSocket) => {
      took = true;
      const w = new WsSocket(ws, s, s.listeners('data').filter((f) => !before.has(f)) as SocketListener[]);
      this.t.started(w);
      this.t.hooks.upgraded(this, w.asSocket(), this.kind === 'tls' ? 'wss' : 'ws', client, via, origin);
    });
    if (!took) {
      // ws refused what the checks above let through: it has answered and closes the socket.
      s.destroy();
      this.t.hooks.ended(this, 'socket_error', 'the upgrade failed');
    }
  }
}

type Owned = net.Socket & { [OWNER]?: unknown };

// A Pending's socket events, one function each for every socket (its OWNER is the Pending).
function pendingData(this: Owned, chunk: Buffer): void {
  (this[OWNER] as Pending).onData(chunk);
}

function pendingError(this: Owned, err: NodeJS.ErrnoException): void {
  (this[OWNER] as Pending).close('socket_error', err.code || err.message);
}

function pendingEnd(this: Owned): void {
  (this[OWNER] as Pending).close('client_closed', 'end of stream');
}

function pendingClose(this: Owned): void {
  (this[OWNER] as Pending).close('client_closed', 'connection closed');
}
