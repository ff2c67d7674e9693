// The listening sockets: plain TCP for seed devices and the SDK, TLS beside it, on every
// configured host. Connections are admitted (per-source limits) on the raw TCP socket,
// before any TLS work, and handed to the server once usable.

import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ConfigError, type ResolvedConfig } from './config.js';
import type { BoundAddress, Transport, TransportHooks } from './transport.js';

export type { BoundAddress };
/** accept() comes after the TLS handshake on the TLS listener; tlsError() when it fails. */
export type ListenerHooks = TransportHooks;

export class Listeners implements Transport {
  private readonly servers: Array<{ server: net.Server; tls: boolean }> = [];
  private tlsServers: tls.Server[] = [];

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
          if (this.hooks.admit(raw)) engine.emit('connection', raw);
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
      if (h.admit(sock)) h.accept(sock, 'tcp');
    });
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
    s.on('secureConnection', (sock: tls.TLSSocket) => h.accept(sock, 'tls'));
    s.on('tlsClientError', (err: Error, sock: tls.TLSSocket) => {
      h.tlsError(err, `${sock.remoteAddress}:${sock.remotePort}`);
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
        srv.listen({ host: h, port, ipv6Only: false }, () => {
          srv.off('error', onError);
          srv.on('error', (err) => this.hooks.error(err));
          resolve(srv);
        });
      };
      attempt(host ?? '::');
    });
  }
}
