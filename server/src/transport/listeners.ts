// The listening sockets: plain TCP for seed devices and the SDK, TLS beside it, on every
// configured host. Connections are admitted (per-source limits) on the raw TCP socket,
// before any TLS work, and handed to the server once usable. The remote address is read
// once, when the connection arrives: after a reset Node no longer knows it.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ConfigError, type ResolvedConfig } from '../config/config.js';
import { forgetPeer, remoteOf } from './limits.js';
import type { BoundAddress, Transport, TransportHooks } from './transport.js';

export type { BoundAddress };
/** accept() comes after the TLS handshake on the TLS listener; tlsError() when it fails. */
export type ListenerHooks = TransportHooks;

/** First byte of a TLS handshake record (a ClientHello). */
export const TLS_HANDSHAKE = 0x16;

/**
 * A fatal TLS alert record, unexpected_message, that the server sends where TLS and plain
 * TCP meet on the wrong port: a plain client on the TLS port sees a first byte of 0x15
 * (the SDK reports "expects TLS"), a TLS client on the plain port gets an alert from its
 * TLS stack (ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE in Node) instead of a bare reset.
 * Not for a seed-format request: a seed device takes whatever its one read() returns for
 * the reply, so it is refused the seed's way, by a close.
 */
export const TLS_ALERT = Uint8Array.of(0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x0a);

/**
 * Codes of a TLS handshake that failed because the client's bytes were not TLS: a plain
 * client on the TLS port whose first byte happened to look like a handshake record.
 */
const NOT_TLS_CODES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_HTTPS_PROXY_REQUEST', 'ERR_SSL_PACKET_LENGTH_TOO_LONG']);

/** The TLS handshake failed because the client does not speak TLS (per the error code). */
export const notTls = (err: { code?: string }): boolean => NOT_TLS_CODES.has(err.code ?? '');

/**
 * Connections the kernel may hold for the server to accept (Node's default is 511). A burst of
 * clients arriving faster than one accept loop takes them overflows a short queue, and each
 * connection dropped there waits for its SYN to be sent again, a second later: a queue as
 * long as the kernel allows (net.core.somaxconn caps it, 4096 by default) absorbs the burst.
 */
const LISTEN_BACKLOG = 4096;

export class Listeners implements Transport {
  private readonly servers: Array<{ server: net.Server; tls: boolean }> = [];
  private tlsServers: tls.Server[] = [];
  /** Remote ends of the raw connections handed to TLS, for the TLS socket's errors. */
  private readonly remotes = new WeakMap<net.Socket, string>();

  constructor(
    private readonly cfg: ResolvedConfig,
    private readonly hooks: ListenerHooks,
  ) {}

  /** Reads the certificate files; a problem is a ConfigError naming the file. */
  secureContext(): tls.SecureContextOptions {
    const t = this.cfg.tls!;
    const read = (flag: string, path: string) => {
      try {
        return readFileSync(path);
      } catch (err: any) {
        throw new ConfigError(`cannot read ${flag} ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      }
    };
    const opts: tls.SecureContextOptions = { cert: read('--tls-cert', t.cert), key: read('--tls-key', t.key), minVersion: 'TLSv1.2' };
    if (t.ca) opts.ca = read('--tls-ca', t.ca);
    try {
      tls.createSecureContext(opts);
    } catch (err: any) {
      throw new ConfigError(`the TLS certificate, key or CA is not usable: ${err.message}`);
    }
    return opts;
  }

  async open(): Promise<void> {
    const c = this.cfg;
    const hosts = c.hosts.length ? c.hosts : [null];
    const ctx = c.tls ? this.secureContext() : null;
    if (c.plain) for (const h of hosts) this.servers.push({ server: await this.bind(this.plainServer(), h, c.port), tls: false });
    if (ctx) {
      // One TLS engine for every TLS port; the ports are plain TCP listeners that admit a
      // connection first and only then hand it to TLS, so a refused one costs no handshake.
      const engine = this.tlsServer(ctx);
      this.tlsServers.push(engine);
      for (const h of hosts) {
        const gate = net.createServer({ noDelay: true }, (raw) => {
          const remote = remoteOf(raw);
          if (this.hooks.admit(raw, remote)) this.sniff(raw, remote, engine);
        });
        this.servers.push({ server: await this.bind(gate, h, c.tlsPort), tls: true });
      }
    }
  }

  /** Re-reads the certificate files (SIGHUP): new handshakes use them, sessions go on. */
  reloadTls(): void {
    if (!this.cfg.tls) return;
    const ctx = this.secureContext();
    for (const s of this.tlsServers) s.setSecureContext(ctx);
  }

  addresses(): BoundAddress[] {
    return this.servers.map(({ server, tls }) => ({ ...(server.address() as net.AddressInfo), tls }));
  }

  close(): Promise<void> {
    return Promise.all(this.servers.map(({ server }) => new Promise<void>((r) => server.close(() => r())))).then(() => {});
  }

  private plainServer(): net.Server {
    const h = this.hooks;
    return net.createServer({ noDelay: true }, (sock) => {
      const remote = remoteOf(sock);
      if (h.admit(sock, remote)) h.accept(sock, 'tcp', remote);
      forgetPeer(sock);
    });
  }

  /**
   * Waits for the first bytes on the TLS port. A TLS handshake record (or an SSLv2-style
   * hello, high bit set) goes to the TLS engine with those bytes put back; anything else is
   * a plain client on the wrong port, answered with a TLS alert so that it can say so. A
   * connection that sends nothing within the handshake timeout is closed as a failed
   * handshake, as the engine would (the engine's own timeout starts once it has the bytes).
   */
  private sniff(raw: net.Socket, remote: string, engine: tls.Server): void {
    const h = this.hooks;
    const done = () => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('error', onError);
      raw.off('close', onClose);
    };
    const fail = (err: Error) => {
      done();
      raw.destroy();
      h.tlsError(err, remote);
    };
    const onError = (err: Error) => fail(err);
    const onClose = () => fail(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const onData = (chunk: Buffer) => {
      done();
      raw.pause();
      if (chunk[0] === TLS_HANDSHAKE || chunk[0] >= 0x80) {
        raw.unshift(chunk); // the TLS socket reads what is buffered first
        this.remotes.set(raw, remote);
        engine.emit('connection', raw);
        return;
      }
      h.plainOnTlsPort(remote);
      raw.on('error', () => {});
      // IPv4 and not the extension's protocol 253: a seed request (or a seed-mode client).
      const seed = chunk[0] >> 4 === 4 && chunk[9] !== 253;
      if (seed) raw.end();
      else raw.end(TLS_ALERT);
      // A peer that never reads must not hold the socket open.
      setTimeout(() => raw.destroy(), 2000).unref();
    };
    const timer = setTimeout(() => fail(Object.assign(new Error('TLS handshake timeout'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' })), this.cfg.handshakeTimeoutMs);
    raw.on('data', onData);
    raw.on('error', onError);
    raw.on('close', onClose);
  }

  /** The remote end of a TLS socket, as read when its raw connection arrived. */
  private remoteOfTls(sock: tls.TLSSocket): string {
    // _parent: the net.Socket a server-side TLSSocket wraps (Node's, undocumented but stable).
    const raw = (sock as unknown as { _parent?: net.Socket })._parent;
    return (raw && this.remotes.get(raw)) ?? remoteOf(sock);
  }

  private tlsServer(ctx: tls.SecureContextOptions): tls.Server {
    const h = this.hooks;
    const mutual = Boolean(this.cfg.tls!.ca);
    const s = tls.createServer({
      ...ctx,
      requestCert: mutual,
      rejectUnauthorized: mutual,
      handshakeTimeout: this.cfg.handshakeTimeoutMs,
      noDelay: true,
    });
    s.on('secureConnection', (sock: tls.TLSSocket) => h.accept(sock, 'tls', this.remoteOfTls(sock)));
    s.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
      h.tlsError(err, this.remoteOfTls(sock));
      sock.destroy();
    });
    return s;
  }

  private bind(srv: net.Server, host: string | null, port: number): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const attempt = (h: string) => {
        const onError = (err: NodeJS.ErrnoException) => {
          // No IPv6 on this host: every IPv4 address instead.
          if (host === null && h === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
          reject(err);
        };
        srv.once('error', onError);
        srv.listen({ host: h, port, ipv6Only: false, backlog: LISTEN_BACKLOG }, () => {
          srv.off('error', onError);
          srv.on('error', (err) => this.hooks.error(err));
          resolve(srv);
        });
      };
      attempt(host ?? '::');
    });
  }
}
