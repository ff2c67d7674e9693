// The server: listeners and admission, the address pool, the routing table, the server's
// own tun, session lifecycle, reloads, and the events an operator sees in the log.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { formatIPv4, readU32, ANY, DST } from '../../client-sdk/src/ipv4.js';
import { AddressPool } from './address-pool.js';
import { AddressRequests } from './address-requests.js';
import { AuthFileError, Authenticator, loadAuthFile } from './auth.js';
import { ConfigError, type ResolvedConfig, type ServerOptions, resolveConfig } from './config.js';
import { type BoundAddress, Listeners, TLS_ALERT, TLS_HANDSHAKE, notTls } from './listeners.js';
import { SourceLimits, limitKey, sourceOf } from './limits.js';
import { type Fields, type Level, LogThrottle, type Logger, silentLogger } from './log.js';
import { Metrics } from './metrics.js';
import { RoutingTable } from './routing-table.js';
import { type EndCode, type Hub, Session } from './session.js';
import { startStatus } from './status.js';
import { dontFragment, fragment, fragmentationNeeded } from './too-big.js';

/** The part of a TUN device the server uses (linux/tun.ts provides it). */
export interface ServerTun {
  readonly name: string;
  /** Writes buf[offset, offset + length); false when the device is full. */
  write(buf: Uint8Array, offset: number, length: number): boolean;
  close(): void;
}

export type OpenTun = (
  name: string,
  config: { address: string; prefix: number; mtu: number },
  onPackets: (packets: Uint8Array[], count: number) => void,
) => Promise<ServerTun>;

export interface CreateServerOptions extends ServerOptions {
  /** Replaces the native tun, for tests and embedding. */
  openTun?: OpenTun;
}

export interface ClientInfo {
  id: number;
  address: string | null;
  remote: string;
  protocol: 'simplevpn' | 'seed';
  transport: 'tcp' | 'tls';
  name: string;
  client: string | null;
  connectedSince: string;
  lastSeen: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  drops: number;
}

const SPOOF_LOG_INTERVAL_MS = 10_000;

export class VpnServer extends EventEmitter implements Hub {
  readonly cfg: ResolvedConfig;
  readonly metrics = new Metrics();
  readonly table = new RoutingTable<Session>();
  readonly pool: AddressPool;
  toTun: ((buf: Uint8Array, offset: number, length: number) => void) | null = null;
  tun: ServerTun | null = null;
  auth: Authenticator | null = null;
  private readonly logger: Logger;
  private readonly openTunImpl: OpenTun | undefined;
  private readonly sessions = new Set<Session>();
  private readonly secure = new WeakSet<Session>();
  private readonly lingering = new Set<net.Socket>();
  private readonly listeners_: Listeners;
  private readonly limits: SourceLimits;
  private readonly requests: AddressRequests;
  /** Refusals before a connection is read: one line per reason every 5 s in a flood. */
  private readonly refusalLog = new LogThrottle(0.2, 1);
  /** Connects, and disconnects of connections that never held an address: bursts of 100, then 50/s. */
  private readonly churnLog = new LogThrottle(50, 100);
  private status: { close(): Promise<void>; address: string } | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private nextId = 1;
  private closing = false;
  private started = false;

  constructor(options: CreateServerOptions = {}) {
    super();
    this.cfg = resolveConfig(options);
    this.logger = options.logger ?? silentLogger;
    this.openTunImpl = options.openTun;
    const c = this.cfg;
    this.pool = new AddressPool(c.subnet.network, c.subnet.prefix, [c.gateway]);
    this.limits = new SourceLimits(c.maxPerSource, c.connRate, c.connRate * 2);
    this.listeners_ = new Listeners(c, {
      admit: (sock, remote) => this.admit(sock, remote),
      accept: (sock, secure, remote) => this.accept(sock, secure, remote),
      tlsError: (err, remote) => this.tlsRefused(err, remote),
      plainOnTlsPort: (remote) => this.wrongPort('plain_on_tls_port', remote),
      error: (err) => this.event('error', 'listener_error', { error: err.message }),
    });
    this.requests = new AddressRequests({
      cfg: c,
      pool: this.pool,
      table: this.table,
      metrics: this.metrics,
      authenticator: () => this.auth,
      linger: (s) => this.linger(s),
      event: (level, name, fields) => this.event(level, name, fields),
    });
  }

  /**
   * Loads the auth file, opens the tun (or says why not), the listeners and the status
   * listener. A bad auth file or certificate rejects with a ConfigError.
   */
  async listen(): Promise<void> {
    const c = this.cfg;
    if (c.auth) {
      this.auth = new Authenticator(await this.readAuth());
      this.fixAddresses(new Map(), this.auth.entries);
    }
    await this.startTun();
    await this.listeners_.open();
    const sweep = Math.max(100, Math.min(1000, c.idleTimeoutMs / 4, c.handshakeTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), sweep);
    this.sweeper.unref();
    if (c.status) {
      this.status = await startStatus(this, c.status.host, c.status.port);
      this.event('info', 'status_listening', { address: this.status.address });
    }
    const fmt = (a: BoundAddress) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`);
    const bound = this.addresses();
    this.event('info', 'listening', {
      addresses: bound.filter((a) => !a.tls).map(fmt).join(',') || undefined,
      subnet: `${formatIPv4(c.subnet.network)}/${c.subnet.prefix}`,
      gateway: formatIPv4(c.gateway),
      tun: this.tun?.name ?? 'none',
      mtu: c.mtu,
      idle_timeout: c.idleTimeoutMs / 1000,
      keepalive: c.keepalive,
      tls_addresses: bound.filter((a) => a.tls).map(fmt).join(',') || undefined,
      mutual_tls: c.tls ? Boolean(c.tls.ca) : undefined,
      auth: this.auth ? `${this.auth.entries.size} clients` : 'none',
    });
    this.started = true;
    if (this.auth && c.plain)
      this.event('warn', 'plain_credentials', {
        detail: 'credentials sent to the plain listener cross the network in clear; use the TLS listener, or --no-plain',
      });
  }

  /** Where the listeners are bound (useful with port 0). */
  addresses(): BoundAddress[] {
    return this.listeners_.addresses();
  }

  /** The plain listener's port (the first listener's when there is no plain one). */
  get port(): number {
    const a = this.addresses();
    return (a.find((x) => !x.tls) ?? a[0])?.port ?? 0;
  }

  get tlsPort(): number {
    return this.addresses().find((x) => x.tls)?.port ?? 0;
  }

  get statusAddress(): string | null {
    return this.status?.address ?? null;
  }

  /**
   * Re-reads the auth file and the TLS certificate (SIGHUP). Sessions whose credentials no
   * longer hold are closed; the others go on. A bad file changes nothing and rejects.
   */
  async reload(): Promise<void> {
    const c = this.cfg;
    try {
      // Everything is read and checked before anything changes.
      const next = this.auth ? await this.readAuth() : null;
      if (c.tls) this.listeners_.reloadTls();
      let revoked = 0;
      if (this.auth && next) {
        const prev = this.auth.entries;
        const changed = this.auth.replace(next);
        revoked = this.requests.revoke(changed, this.sessions);
        this.fixAddresses(prev, next);
      }
      this.event('info', 'reloaded', { auth_clients: this.auth?.entries.size, revoked_sessions: revoked, tls: c.tls ? 'reloaded' : undefined });
    } catch (err: any) {
      this.event('error', 'reload_failed', { error: err.message, detail: 'the previous auth file and certificates stay in force' });
      throw err;
    }
  }

  /** Closes listeners and sessions, removes the tun. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const closed = this.listeners_.close();
    for (const s of [...this.sessions]) s.end('shutdown', 'server shutting down');
    for (const sock of this.lingering) sock.destroy();
    await closed;
    if (this.status) await this.status.close();
    if (this.tun) {
      this.tun.close();
      this.event('info', 'tun_closed', { name: this.tun.name });
      this.tun = null;
      this.toTun = null;
    }
    if (this.started) this.event('info', 'stopped', {});
  }

  clients(): ClientInfo[] {
    return [...this.sessions].map((s) => ({
      id: s.id,
      address: s.address ? formatIPv4(s.address) : null,
      remote: s.remote,
      protocol: s.extended ? 'simplevpn' : 'seed',
      transport: this.secure.has(s) ? 'tls' : 'tcp',
      name: s.name,
      client: s.authId || null,
      connectedSince: new Date(s.since).toISOString(),
      lastSeen: new Date(s.lastRx).toISOString(),
      rxBytes: s.rxBytes,
      txBytes: s.txBytes,
      rxPackets: s.rxPackets,
      txPackets: s.txPackets,
      drops: s.drops,
    }));
  }

  metricsText(): string {
    return this.metrics.render({ sessions: this.sessions.size, inUse: this.pool.size, free: this.pool.free, tun: this.tun !== null });
  }

  // ---- Hub: called by sessions ----

  request(s: Session, frame: Uint8Array): void {
    this.requests.handle(s, frame);
  }

  tooBig(from: Session | null, b: Uint8Array, o: number, n: number, peer: Session): void {
    const m = this.metrics;
    if (dontFragment(b, o)) {
      m.drops.too_big++;
      const icmp = fragmentationNeeded(b, o, n, peer.mtu, this.cfg.gateway);
      if (from !== null) from.deliver(icmp, 1);
      else this.toTun?.(icmp, 0, icmp.length);
    } else {
      const f = fragment(b, o, n, peer.mtu);
      m.fragmented += f.count;
      peer.deliver(f.data, f.count);
    }
  }

  spoofed(s: Session, src: number): void {
    const now = Date.now();
    if (now - s.spoofLoggedAt < SPOOF_LOG_INTERVAL_MS) {
      s.spoofUnlogged++;
      return;
    }
    this.event('warn', 'drop_spoofed', {
      id: s.id,
      remote: s.remote,
      address: formatIPv4(s.address),
      source: formatIPv4(src),
      more_since_last: s.spoofUnlogged,
    });
    s.spoofLoggedAt = now;
    s.spoofUnlogged = 0;
  }

  ended(s: Session, code: EndCode, detail: string): void {
    if (!this.sessions.delete(s)) return;
    if (s.address !== ANY) {
      this.table.unbind(s.address, s);
      this.pool.release(s.address);
    }
    this.metrics.disconnected(code);
    // Connections that never held an address are logged at most every few seconds per reason
    // (the event is emitted every time).
    const held = s.address === ANY ? this.churnLog.pass('disconnect', Date.now()) : 0;
    this.event(held < 0 ? 'quiet' : 'info', 'disconnect', {
      id: s.id,
      remote: s.remote,
      address: s.address ? formatIPv4(s.address) : null,
      reason: code,
      detail,
      rx_bytes: s.rxBytes,
      tx_bytes: s.txBytes,
      duration_s: Math.round((Date.now() - s.since) / 100) / 10,
      more_since_last: held > 0 ? held : undefined,
    });
  }

  // ---- internals ----

  private async readAuth() {
    const c = this.cfg;
    try {
      return await loadAuthFile(c.auth!, (a) =>
        !this.pool.inside(a) ? `is outside the subnet ${formatIPv4(c.subnet.network)}/${c.subnet.prefix}` : !this.pool.assignable(a) ? 'is reserved (network, broadcast or the server)' : null,
      );
    } catch (err) {
      if (err instanceof AuthFileError) throw new ConfigError(`--auth ${err.message}`);
      throw err;
    }
  }

  /** Keeps every fixed address of the auth file out of general use. */
  private fixAddresses(prev: Map<string, { address: number }>, next: Map<string, { address: number }>): void {
    const keep = new Set([...next.values()].map((e) => e.address).filter(Boolean));
    for (const e of prev.values()) if (e.address && !keep.has(e.address)) this.pool.unfix(e.address);
    for (const a of keep) this.pool.fix(a);
  }

  /** Per-source limits, on the raw connection before anything is read from it. */
  private admit(sock: net.Socket, remote: string): boolean {
    if (this.closing) {
      sock.destroy();
      return false;
    }
    const key = limitKey(sourceOf(sock.remoteAddress));
    const refused = this.limits.admit(key, Date.now());
    if (refused) {
      this.metrics.refused(refused);
      const held = this.refusalLog.pass(refused, Date.now());
      if (held >= 0)
        this.event('warn', 'refuse_connection', {
          remote,
          reason: refused,
          detail: refused === 'per_source_limit' ? `${this.cfg.maxPerSource} connections from this address already` : `more than ${this.cfg.connRate} new connections per second from this address`,
          more_since_last: held,
        });
      sock.destroy();
      return false;
    }
    sock.once('close', () => this.limits.release(key));
    return true;
  }

  private accept(sock: net.Socket, secure: boolean, remote: string): void {
    if (this.closing) return void sock.destroy();
    // A TLS client on the plain port: its first byte is a TLS handshake record, which the
    // framer would call a malformed frame. Checked before the session reads the chunk.
    if (!secure) sock.once('data', (chunk: Buffer) => chunk[0] === TLS_HANDSHAKE && this.wrongPort('tls_on_plain_port', remote, s));
    const s = new Session(this.nextId++, sock, remote, this);
    this.sessions.add(s);
    if (secure) this.secure.add(s);
    this.metrics.connections++;
    // A flood of connections must not flood the log: beyond the budget, the next line says how many were held back.
    const held = this.churnLog.pass('connect', Date.now());
    this.event(held < 0 ? 'quiet' : 'info', 'connect', { id: s.id, remote, transport: secure ? 'tls' : 'tcp', more_since_last: held > 0 ? held : undefined });
  }

  private tlsRefused(err: Error & { code?: string }, remote: string): void {
    if (notTls(err)) return this.wrongPort('plain_on_tls_port', remote);
    this.metrics.refused('tls_handshake');
    const held = this.refusalLog.pass('tls_handshake', Date.now());
    if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason: 'tls_handshake', detail: err.code || err.message, more_since_last: held });
  }

  /**
   * A client on the wrong port: TLS on the plain one (`s`, its session, is then closed with
   * a TLS alert), or plain TCP on the TLS one (the listener has answered with the alert).
   */
  private wrongPort(reason: 'tls_on_plain_port' | 'plain_on_tls_port', remote: string, s?: Session): void {
    const plain = this.addresses().find((a) => !a.tls)?.port;
    const secure = this.addresses().find((a) => a.tls)?.port;
    const detail =
      reason === 'tls_on_plain_port'
        ? `a TLS client on the plain port ${plain}: ` + (secure ? `connect it to the TLS port ${secure}, or drop --tls on the client` : 'this server has no TLS listener, drop --tls on the client')
        : `a plain TCP client on the TLS port ${secure}: ` + (plain ? `connect it with --tls, or to the plain port ${plain}` : 'connect it with --tls (this server has no plain listener)');
    this.metrics.refused(reason);
    const held = this.refusalLog.pass(reason, Date.now());
    if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason, detail, more_since_last: held });
    s?.end('refused', reason, TLS_ALERT);
  }

  private linger(s: Session): void {
    const sock = s.socket;
    if (sock.destroyed) return;
    this.lingering.add(sock);
    sock.once('close', () => this.lingering.delete(sock));
  }

  /** Closes sessions that went silent, or never asked for an address. */
  private sweep(): void {
    const now = Date.now();
    const idle = this.cfg.idleTimeoutMs;
    const hs = this.cfg.handshakeTimeoutMs;
    for (const s of this.sessions) {
      if (s.address === ANY) {
        if (now - s.since >= hs && !s.pending) s.end('handshake_timeout', `no address request within ${hs / 1000} s`);
      } else if (now - s.lastRx >= idle) {
        s.end('idle_timeout', `nothing received for ${Math.round((now - s.lastRx) / 1000)} s`);
      }
    }
    this.limits.sweep(now);
  }

  private async startTun(): Promise<void> {
    const c = this.cfg;
    if (c.tun === null) {
      this.event('info', 'tun_disabled', { consequence: this.noTunConsequence() });
      return;
    }
    const onPackets = (packets: Uint8Array[], count: number) => this.fromTun(packets, count);
    const config = { address: formatIPv4(c.gateway), prefix: c.subnet.prefix, mtu: c.mtu };
    try {
      const open: OpenTun = this.openTunImpl ?? (await import('./native-tun.js')).openServerTun;
      this.tun = await open(c.tun, config, onPackets);
    } catch (err: any) {
      this.event('warn', 'tun_unavailable', { cause: err?.message ?? String(err), code: err?.code, consequence: this.noTunConsequence() });
      return;
    }
    const tun = this.tun;
    const m = this.metrics;
    this.toTun = (b, o, n) => {
      try {
        if (tun.write(b, o, n)) m.tunTxPackets++;
        else m.drops.tun_full++;
      } catch {
        // The kernel refuses what it cannot parse as IP (EINVAL): that packet, not the session.
        m.drops.tun_rejected++;
      }
    };
    this.event('info', 'tun_up', { name: tun.name, address: config.address, prefix: config.prefix, mtu: config.mtu });
  }

  private noTunConsequence(): string {
    return `clients can reach each other, but packets to any other address, the server's own ${formatIPv4(this.cfg.gateway)} included, are dropped (counted as no_route)`;
  }

  /** Packets Linux routed into the server's tun: to the client that owns the destination. */
  private fromTun(packets: Uint8Array[], count: number): void {
    const m = this.metrics;
    for (let i = 0; i < count; i++) {
      const p = packets[i];
      m.tunRxPackets++;
      if (p.length < 20 || p[0] >> 4 !== 4) {
        m.drops.not_ipv4++;
        continue;
      }
      const peer = this.table.lookup(readU32(p, DST));
      if (peer === undefined) m.drops.no_route++;
      else if (p.length > peer.mtu) this.tooBig(null, p, 0, p.length, peer);
      else peer.deliver(p, 1);
    }
    this.table.flush();
  }

  /** Logs (unless 'quiet') and emits an event. */
  private event(level: Level | 'quiet', name: string, fields: Fields): void {
    if (level !== 'quiet') this.logger.log(level, name, fields);
    this.emit(name, fields);
  }
}

export function createServer(options: CreateServerOptions = {}): VpnServer {
  return new VpnServer(options);
}

export type { EndCode };
