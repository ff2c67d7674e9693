// The server: its lifecycle and its wiring. The data side (data/: the switch, client
// sessions, the tun port) moves packets; the control side (control/: admission, the lease
// store, credentials) decides who holds which address. This file opens the transports and
// the tun, keeps the list of connections, closes silent ones, reloads, and turns what
// happens into the events an operator sees in the log.

import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { formatIPv4, formatIPv6, ANY } from '../../protocol/index.js';
import { type Fields, type Level, LogThrottle, type Logger, silentLogger } from '../../common/log.js';
import { ConfigError, type ResolvedConfig, type ServerOptions, resolveConfig } from './config/config.js';
import { Admission, type Client } from './control/admission.js';
import { AuthFileError, Authenticator, loadAuthFile } from './control/auth.js';
import { certificateId } from './control/auth-cert.js';
import { type PooledLeaseStore, createLeaseStore, describeStore } from './cluster/lease-stores.js';
import type { OpenRouteTable } from './cluster/peer-routes.js';
import { type EndCode, Reassembly, type Session, type SessionEnv } from './data/session.js';
import { NativeSessions, type OpenHub, nativePathEnabled } from './data/native-sessions.js';
import { Switch } from './data/switch.js';
import { type OpenTun, type ServerTun, TunPort } from './data/tun-port.js';
import { warmDataPath, warmUpOptions } from './data/warm-up.js';
import { registerInternals } from './internals.js';
import { Listeners, TLS_ALERT, TLS_HANDSHAKE, notTls } from './transport/listeners.js';
import { SourceLimits, limitKey, sourceOf } from './transport/limits.js';
import { Metrics } from './metrics/metrics.js';
import { startStatus } from './metrics/status.js';
import type { BoundAddress, TransportKind } from './transport/transport.js';
import { type AdmitRefusal } from './transport/limits.js';
import { TrustedProxies } from './transport/proxy.js';
import { type Opening, WebSocketTransport } from './transport/websocket.js';

export type { BoundAddress, EndCode, OpenHub, OpenTun, ServerTun };

export interface CreateServerOptions extends ServerOptions {
  /**
   * Opens the server's tun. simplevpn-server and the `simplevpn/server` entry pass the
   * native one (linux/server-tun.ts); tests and embedders pass their own. Without it the
   * server switches client-to-client traffic only.
   */
  openTun?: OpenTun;
  /**
   * Opens the kernel's routes to the clients of other servers of a cluster (--etcd):
   * simplevpn-server passes linux/kernel-routes.ts. Without it (or without a tun) a cluster
   * server keeps no routes, and its clients reach only the clients of their own server.
   */
  openRoutes?: OpenRouteTable;
  /**
   * Opens the native switching hub (linux/server-hub.ts): plain-TCP client-to-client packets
   * are then switched in C. simplevpn-server and the `simplevpn/server` entry pass it.
   */
  openHub?: OpenHub;
  /** The native switching path, when openHub is given: on unless false or SIMPLEVPN_NATIVE_PATH=0. */
  nativePath?: boolean;
}

export interface ClientInfo {
  id: number;
  address: string | null;
  /** Its IPv6 address (--subnet6, when it asked for one), else null. */
  address6: string | null;
  remote: string;
  protocol: 'simplevpn' | 'seed';
  transport: TransportKind;
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

export class VpnServer extends EventEmitter {
  readonly cfg: Readonly<ResolvedConfig>;
  private readonly metrics_ = new Metrics();
  private readonly sw: Switch;
  private readonly leases: PooledLeaseStore;
  private readonly admission: Admission;
  private readonly logger: Logger;
  private readonly openTunImpl: OpenTun | undefined;
  private readonly connections = new Set<Client>();
  private readonly lingering = new Set<net.Socket>();
  private readonly listeners_: Listeners;
  private readonly limits: SourceLimits;
  /** WebSocket on the listeners (null with --no-ws): connections are Openings until their first bytes say what they are. */
  private readonly ws: WebSocketTransport | null;
  private readonly proxies: TrustedProxies;
  /** Refusals before a connection is read: one line per reason every 5 s in a flood. */
  private readonly refusalLog = new LogThrottle(0.2, 1);
  /** Connects, and disconnects of connections that never held an address: bursts of 100, then 50/s. */
  private readonly churnLog = new LogThrottle(50, 100);
  private readonly nativeLog = new LogThrottle(1, 1);
  private tunPort: TunPort | null = null;
  private readonly openHub: OpenHub | undefined;
  /** The native switching path; null when off (the option, SIMPLEVPN_NATIVE_PATH=0, no openHub). */
  private readonly native: NativeSessions | null;
  private auth: Authenticator | null = null;
  private status: { close(): Promise<void>; address: string } | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private nextId = 1;
  private closing = false;
  private started = false;

  constructor(options: CreateServerOptions = {}) {
    super();
    const c = (this.cfg = resolveConfig(options));
    this.logger = options.logger ?? silentLogger;
    this.openTunImpl = options.openTun;
    this.openHub = options.openHub;
    this.native = this.openHub && (options.nativePath ?? nativePathEnabled()) ? new NativeSessions(c.sendQueue, (s, err) => this.nativeRefused(s, err)) : null;
    const metrics = this.metrics_;
    this.sw = new Switch(metrics, c.gateway);
    this.sw.gateway6 = c.subnet6?.gateway ?? null;
    this.leases = createLeaseStore(
      c,
      {
        // The store can no longer vouch for an address: the session holding it here ends.
        evict: (address, code, detail) => this.admission.holder(address)?.session.end(code, detail),
        event: (level, name, fields) => this.event(level, name, fields as Fields),
      },
      c.tun === null ? undefined : options.openRoutes,
    );
    this.limits = new SourceLimits(c.maxPerSource, c.connRate, c.connRate * 2);
    this.listeners_ = new Listeners(c, {
      admit: (sock, remote) => this.admit(sock, remote),
      accept: (sock, kind, remote) => this.accept(sock, kind, remote),
      tlsError: (err, remote) => this.tlsRefused(err, remote),
      plainOnTlsPort: (remote) => this.wrongPort('plain_on_tls_port', remote),
      error: (err) => this.event('error', 'listener_error', { error: err.message }),
    });
    this.proxies = new TrustedProxies(c.trustProxy);
    this.ws = c.ws
      ? new WebSocketTransport(c, this.proxies, {
          stream: (o, sock, head) => this.opened(o, sock, o.kind, o.remote, head),
          upgraded: (o, sock, kind, client, via, origin) => this.upgraded(o, sock, kind, client, via, origin),
          admitLate: (ip, remote, sock) => this.admitLate(ip, remote, sock),
          refused: (o, reason, detail) => this.refusedOpening(o, reason, detail),
          ended: (o, code, detail) => this.openingEnded(o, code, detail),
        })
      : null;
    const env: SessionEnv = { sw: this.sw, metrics, sendQueue: c.sendQueue, maxFrame: c.maxFrame, reassembly: new Reassembly(c.frameMemory), native: this.native };
    this.admission = new Admission({
      cfg: c,
      leases: this.leases,
      env,
      metrics,
      authenticator: () => this.auth,
      linger: (sock) => this.linger(sock),
      event: (level, name, fields) => this.event(level, name, fields),
      ended: (client, code, detail) => this.ended(client, code, detail),
    });
    const self = this;
    registerInternals(this, {
      // With the hub's counters in (they are taken when looked at).
      get metrics() {
        self.native?.sync();
        return metrics;
      },
      switch: this.sw,
      leases: this.leases,
      admission: this.admission,
      clients: this.connections,
      get tun() {
        return self.tunPort;
      },
      get auth() {
        return self.auth;
      },
    });
  }

  /**
   * Loads the auth file, opens the tun (or says why not), the listeners and the status
   * listener. A bad auth file or certificate rejects with a ConfigError.
   */
  async listen(): Promise<void> {
    const c = this.cfg;
    if (c.auth) {
      this.auth = new Authenticator(await this.readAuth(), { rate: c.authRate, burst: c.authRate });
      const legacyLog = new LogThrottle(1, 5);
      this.auth.onLegacy = (id) => {
        const held = legacyLog.pass('auth_legacy_hash', Date.now());
        this.event(held < 0 ? 'quiet' : 'warn', 'auth_legacy_hash', {
          client: id,
          detail: 'its entry holds an older scrypt$ hash, which verifies only the secret itself: re-hash the secret with simplevpn-server --hash-secret to let it answer challenges',
          more_since_last: held > 0 ? held : undefined,
        });
      };
      this.fixAddresses(new Map(), this.auth.entries);
    }
    await this.leases.open?.();
    await this.startTun();
    const nativeOff = this.native ? await this.native.open(this.openHub!, c.maxFrame) : null;
    let tunOff: string | null = null;
    if (this.native?.active) {
      this.native.watch(this.sw);
      if (this.tunPort) tunOff = this.native.useTun(this.tunPort);
    }
    if (c.warmUp) await this.warmUp();
    await this.listeners_.open();
    const sweep = Math.max(100, Math.min(1000, c.idleTimeoutMs / 4, c.handshakeTimeoutMs / 4, c.frameTimeoutMs / 4));
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
      subnet6: c.subnet6 ? `${formatIPv6(c.subnet6.network)}/${c.subnet6.prefix}` : undefined,
      tun: this.tunPort?.device.name ?? 'none',
      data_path: this.native?.active ? 'native' : 'javascript',
      data_path_detail: nativeOff ? `the native switching path is off: ${nativeOff}` : tunOff ? `the tun's packets take the JavaScript path: ${tunOff}` : undefined,
      tun_data_path: this.tunPort ? (this.native?.tunActive ? 'native' : 'javascript') : undefined,
      mtu: c.mtu,
      idle_timeout: c.idleTimeoutMs / 1000,
      keepalive: c.keepalive,
      tls_addresses: bound.filter((a) => a.tls).map(fmt).join(',') || undefined,
      mutual_tls: c.tls ? Boolean(c.tls.ca) : undefined,
      websocket: c.ws ? c.ws.path : 'off',
      trusted_proxies: c.trustProxy.length ? c.trustProxy.map((n) => `${n.address}/${n.prefix}`).join(',') : undefined,
      auth: this.auth ? `${this.auth.entries.size} clients` : 'none',
      leases: describeStore(c),
    });
    this.started = true;
    if (this.auth && c.plain && c.authBearer === 'any')
      this.event('warn', 'plain_credentials', {
        detail: 'secrets presented as they are (bearer) to the plain listener cross the network in clear; use the TLS listener, --no-plain, or --auth-bearer tls or off (challenge-response sends no secret)',
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
        revoked = this.admission.revoke(changed, this.connections);
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
    this.auth?.close();
    const closed = this.listeners_.close();
    this.ws?.close();
    // The store hears first: a state file keeps the leases of the sessions ended now.
    const stored = this.leases.close?.();
    for (const c of [...this.connections]) c.session.end('shutdown', 'server shutting down');
    for (const sock of this.lingering) sock.destroy();
    this.native?.close();
    await closed;
    await stored?.catch((err: Error) => this.event('error', 'lease_store_close_failed', { error: err.message }));
    if (this.status) await this.status.close();
    const tun = this.tunPort;
    if (tun) {
      this.sw.setFallback(null);
      this.tunPort = null;
      tun.device.close();
      this.event('info', 'tun_closed', { name: tun.device.name });
    }
    if (this.started) this.event('info', 'stopped', {});
  }

  clients(): ClientInfo[] {
    this.native?.sync();
    const opening = this.ws ? [...this.ws.list()].map((o) => this.openingInfo(o)) : [];
    return opening.concat([...this.connections].map((c) => {
      const s = c.session;
      return {
        id: c.id,
        address: s.address ? formatIPv4(s.address) : null,
        address6: s.address6 ? formatIPv6(s.address6) : null,
        remote: c.remote,
        protocol: c.extended ? 'simplevpn' : 'seed',
        transport: c.transport,
        name: c.name,
        client: c.authId || null,
        connectedSince: new Date(c.since).toISOString(),
        lastSeen: new Date(s.lastRx).toISOString(),
        rxBytes: s.rxBytes,
        txBytes: s.txBytes,
        rxPackets: s.rxPackets,
        txPackets: s.txPackets,
        drops: s.drops,
      };
    }));
  }

  /** A connection whose first bytes have not said what it is, as /clients shows it. */
  private openingInfo(o: Opening): ClientInfo {
    const since = new Date(o.since).toISOString();
    const counts = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0, drops: 0 };
    return { id: o.id, address: null, address6: null, remote: o.remote, protocol: 'seed', transport: o.kind, name: '', client: null, connectedSince: since, lastSeen: since, ...counts };
  }

  metricsText(): string {
    this.native?.sync();
    return this.metrics_.render({ sessions: this.connections.size + (this.ws?.size ?? 0), inUse: this.leases.inUse, free: this.leases.free, tun: this.tunPort !== null, store: this.leases.health?.() });
  }

  /** Where leases are recorded and how that is going: etcd reachable, leases held here and elsewhere, routes (/cluster). */
  cluster(): Record<string, unknown> {
    const h = this.leases.health?.();
    if (!h) return { store: 'memory', reachable: true, leases_held: this.leases.inUse };
    return { store: h.kind, reachable: h.reachable, leases_held: h.held, leases_elsewhere: h.elsewhere, routes: h.routes, ...h.detail, leases: this.leases.records?.() };
  }

  // ---- internals ----

  private async readAuth() {
    const c = this.cfg;
    const leases = this.leases;
    try {
      return await loadAuthFile(c.auth!, (a) =>
        !leases.inside(a) ? `is outside the subnet ${formatIPv4(c.subnet.network)}/${c.subnet.prefix}` : !leases.assignable(a) ? 'is reserved (network, broadcast or the server)' : null,
      );
    } catch (err) {
      if (err instanceof AuthFileError) throw new ConfigError(`--auth ${err.message}`);
      throw err;
    }
  }

  /** Keeps every fixed address of the auth file out of general use. */
  private fixAddresses(prev: Map<string, { address: number }>, next: Map<string, { address: number }>): void {
    const keep = new Set([...next.values()].map((e) => e.address).filter(Boolean));
    for (const e of prev.values()) if (e.address && !keep.has(e.address)) this.leases.unfix(e.address);
    for (const a of keep) this.leases.fix(a);
  }

  /** Per-source limits, on the raw connection before anything is read from it. */
  private admit(sock: net.Socket, remote: string): boolean {
    if (this.closing) {
      sock.destroy();
      return false;
    }
    // Reset before it was accepted: Node no longer knows the remote address. Such connections
    // are not one source: refused and counted apart, without touching any source's budget.
    if (!sock.remoteAddress) {
      this.metrics_.refused('no_remote');
      const held = this.refusalLog.pass('no_remote', Date.now());
      if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason: 'no_remote', detail: 'reset before it was accepted', more_since_last: held });
      sock.destroy();
      return false;
    }
    const ip = sourceOf(sock.remoteAddress);
    // A trusted proxy's connections count under the client they forward, once it is known (admitLate).
    if (this.proxies.has(ip)) return true;
    const key = limitKey(ip);
    const refused = this.limits.admit(key, Date.now());
    if (refused) {
      this.metrics_.refused(refused);
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
    this.limits.hold(sock, key);
    return true;
  }

  /**
   * Per-source limits for a client known only after its first bytes: one behind a trusted
   * proxy. Counted and logged as admit() does; the count is released when `sock` closes.
   */
  private admitLate(ip: string, remote: string, sock: net.Socket): AdmitRefusal | null {
    const key = limitKey(ip);
    const refused = this.limits.admit(key, Date.now());
    if (refused) {
      this.metrics_.refused(refused);
      const held = this.refusalLog.pass(refused, Date.now());
      if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason: refused, detail: 'forwarded by a trusted proxy', more_since_last: held });
      return refused;
    }
    this.limits.hold(sock, key);
    return null;
  }

  private accept(sock: net.Socket, kind: TransportKind, remote: string): void {
    if (this.closing) return void sock.destroy();
    if (this.ws !== null && (kind === 'tcp' || kind === 'tls')) {
      // Nothing is read yet: its first bytes say whether it is the stream or a WebSocket upgrade.
      const id = this.nextId++;
      this.ws.begin(sock, kind, remote, id);
      this.connected(id, remote, kind);
      return;
    }
    // A TLS client on the plain port: its first byte is a TLS handshake record, which the
    // framer would call a malformed frame. Registered before the session's own reader, so
    // it sees the first chunk first.
    if (kind === 'tcp') sock.once('data', (chunk: Buffer) => chunk[0] === TLS_HANDSHAKE && this.wrongPort('tls_on_plain_port', remote, c));
    const c = this.admission.connect(sock, this.nextId++, remote, kind, this.certId(sock, kind));
    this.connections.add(c);
    this.connected(c.id, remote, kind);
  }

  /** The auth id a TLS connection's client certificate names, when certificates name ids (--cert-id). */
  private certId(sock: net.Socket, kind: TransportKind): string | null {
    return this.cfg.certId && kind === 'tls' ? (certificateId(sock) ?? '') : null;
  }

  private connected(id: number, remote: string, kind: TransportKind): void {
    this.metrics_.connections++;
    // A flood of connections must not flood the log: beyond the budget, the next line says how many were held back.
    const held = this.churnLog.pass('connect', Date.now());
    this.event(held < 0 ? 'quiet' : 'info', 'connect', { id, remote, transport: kind, more_since_last: held > 0 ? held : undefined });
  }

  /** An Opening becomes a session: over its socket (the stream, `head` read already) or over a WebSocket. */
  private session(o: Opening, sock: net.Socket, kind: TransportKind, remote: string): Client {
    // Connected when its TCP connection arrived: the handshake timeout counts from there.
    const c = this.admission.connect(sock, o.id, remote, kind, this.certId(o.socket, o.kind), o.since);
    this.connections.add(c);
    return c;
  }

  /** The first bytes of an Opening are the stream: a session reads them, and what follows. */
  private opened(o: Opening, sock: net.Socket, kind: TransportKind, remote: string, head: Buffer): void {
    if (this.closing) return void sock.destroy();
    const c = this.session(o, sock, kind, remote);
    // A TLS client on the plain port: its first byte is a TLS handshake record, which the framer would call a malformed frame.
    if (kind === 'tcp' && head[0] === TLS_HANDSHAKE) return this.wrongPort('tls_on_plain_port', remote, c);
    sock.emit('data', head);
  }

  /** An Opening was a WebSocket upgrade, done: a session over the WebSocket, under the client's address. */
  private upgraded(o: Opening, sock: net.Socket, kind: 'ws' | 'wss', client: string, via: string | undefined, origin: string | undefined): void {
    if (this.closing) return void sock.destroy();
    const c = this.session(o, sock, kind, client);
    const held = this.churnLog.pass('upgrade', Date.now());
    this.event(held < 0 ? 'quiet' : 'info', 'upgrade', { id: c.id, remote: client, via, transport: kind, origin, more_since_last: held > 0 ? held : undefined });
  }

  /** An HTTP request that is not the WebSocket upgrade, answered with an error. */
  private refusedOpening(o: Opening, reason: string, detail: string): void {
    this.metrics_.refused(reason);
    const held = this.refusalLog.pass(reason, Date.now());
    if (held >= 0) this.event('warn', 'refuse_connection', { id: o.id, remote: o.remote, reason, detail, more_since_last: held });
  }

  /** An Opening closed before it became a session. */
  private openingEnded(o: Opening, code: EndCode, detail: string): void {
    this.metrics_.disconnected(code);
    const held = this.churnLog.pass('disconnect', Date.now());
    this.event(held < 0 ? 'quiet' : 'info', 'disconnect', {
      id: o.id,
      remote: o.remote,
      address: null,
      reason: code,
      detail,
      rx_bytes: 0,
      tx_bytes: 0,
      duration_s: Math.round((Date.now() - o.since) / 100) / 10,
      more_since_last: held > 0 ? held : undefined,
    });
  }

  /** A connection closed (admission released its address). */
  private ended(c: Client, code: EndCode, detail: string): void {
    if (!this.connections.delete(c)) return;
    const s = c.session;
    this.metrics_.disconnected(code);
    // Connections that never held an address are logged at most every few seconds per reason
    // (the event is emitted every time).
    const held = s.address === ANY ? this.churnLog.pass('disconnect', Date.now()) : 0;
    this.event(held < 0 ? 'quiet' : 'info', 'disconnect', {
      id: c.id,
      remote: c.remote,
      address: s.address ? formatIPv4(s.address) : null,
      reason: code,
      detail,
      rx_bytes: s.rxBytes,
      tx_bytes: s.txBytes,
      duration_s: Math.round((Date.now() - c.since) / 100) / 10,
      more_since_last: held > 0 ? held : undefined,
    });
  }

  private tlsRefused(err: Error & { code?: string }, remote: string): void {
    if (notTls(err)) return this.wrongPort('plain_on_tls_port', remote);
    this.metrics_.refused('tls_handshake');
    const held = this.refusalLog.pass('tls_handshake', Date.now());
    if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason: 'tls_handshake', detail: err.code || err.message, more_since_last: held });
  }

  /**
   * A client on the wrong port: TLS on the plain one (`c`, its connection, is then closed with
   * a TLS alert), or plain TCP on the TLS one (the listener has answered with the alert).
   */
  private wrongPort(reason: 'tls_on_plain_port' | 'plain_on_tls_port', remote: string, c?: Client): void {
    const plain = this.addresses().find((a) => !a.tls)?.port;
    const secure = this.addresses().find((a) => a.tls)?.port;
    const detail =
      reason === 'tls_on_plain_port'
        ? `a TLS client on the plain port ${plain}: ` + (secure ? `connect it to the TLS port ${secure}, or drop --tls on the client` : 'this server has no TLS listener, drop --tls on the client')
        : `a plain TCP client on the TLS port ${secure}: ` + (plain ? `connect it with --tls, or to the plain port ${plain}` : 'connect it with --tls (this server has no plain listener)');
    this.metrics_.refused(reason);
    const held = this.refusalLog.pass(reason, Date.now());
    if (held >= 0) this.event('warn', 'refuse_connection', { remote, reason, detail, more_since_last: held });
    c?.session.end('refused', reason, TLS_ALERT);
  }

  /** A refused connection still flushing its refusal: closed at the latest with the server. */
  private linger(sock: net.Socket): void {
    if (sock.destroyed) return;
    this.lingering.add(sock);
    sock.once('close', () => this.lingering.delete(sock));
  }

  /** Closes sessions that went silent, or never asked for an address. */
  private sweep(): void {
    const now = Date.now();
    const idle = this.cfg.idleTimeoutMs;
    const hs = this.cfg.handshakeTimeoutMs;
    const ft = this.cfg.frameTimeoutMs;
    this.native?.sync();
    for (const c of this.connections) {
      const s = c.session;
      if (s.address === ANY && now - c.since >= hs && !c.pending) s.end('handshake_timeout', `no address request within ${hs / 1000} s`);
      // A frame that does not complete in time ends the connection, however slowly its bytes come.
      else if (s.partialSince !== 0 && now - s.partialSince >= ft) s.end('frame_timeout', `a frame took longer than ${ft / 1000} s to arrive whole`);
      else if (s.address !== ANY && now - s.lastRx >= idle) s.end('idle_timeout', `nothing received for ${Math.round((now - s.lastRx) / 1000)} s`);
    }
    this.ws?.sweep(now);
    this.limits.sweep(now);
  }

  /**
   * Runs the data path on a throw-away server before this one listens (data/warm-up.ts),
   * so that the first clients meet optimised code. A failure costs only that: logged, and
   * the server starts as it would have without.
   */
  private async warmUp(): Promise<void> {
    try {
      const r = await warmDataPath((o) => new VpnServer(o), warmUpOptions(this.cfg));
      this.event('info', 'warm_up', { ms: Math.round(r.ms), cpu_ms: Math.round(r.cpuMs), packets: r.packets });
    } catch (err: any) {
      this.event('warn', 'warm_up_failed', {
        error: err?.message ?? String(err),
        consequence: "the first clients' packets run in code V8 has not optimised yet, slower until it has (a few hundred packets)",
      });
    }
  }

  private async startTun(): Promise<void> {
    const c = this.cfg;
    if (c.tun === null) {
      this.event('info', 'tun_disabled', { consequence: this.noTunConsequence() });
      return;
    }
    const open = this.openTunImpl;
    if (open === undefined) {
      this.event('warn', 'tun_unavailable', { cause: 'no tun implementation was passed in (the openTun option)', consequence: this.noTunConsequence() });
      return;
    }
    const s6 = c.subnet6;
    const config: Parameters<OpenTun>[1] = { address: formatIPv4(c.gateway), prefix: c.subnet.prefix, mtu: c.mtu };
    if (s6) config.ipv6 = { address: formatIPv6(s6.gateway), prefix: s6.prefix };
    let device: ServerTun;
    try {
      device = await open(
        c.tun,
        config,
        (packets, count) => this.tunPort?.receive(packets, count),
        (err) => this.tunFailed(err),
      );
    } catch (err: any) {
      this.event('warn', 'tun_unavailable', { cause: err?.message ?? String(err), code: err?.code, consequence: this.noTunConsequence() });
      return;
    }
    this.tunPort = new TunPort(device, this.sw, this.metrics_, (err) => this.tunFailed(err));
    this.sw.setFallback(this.tunPort);
    this.event('info', 'tun_up', { name: device.name, address: config.address, prefix: config.prefix, mtu: config.mtu, offload: device.offload, offload_error: device.offloadError, address6: config.ipv6 && `${config.ipv6.address}/${config.ipv6.prefix}` });
  }

  /**
   * The tun failed for good (deleted under the server, an I/O error): the server goes on
   * without it, as it would have started without one, and says so once.
   */
  private tunFailed(err: Error & { code?: string }): void {
    const port = this.tunPort;
    if (port === null) return;
    this.tunPort = null;
    this.sw.setFallback(null);
    this.native?.useTun(null);
    try {
      port.device.close();
    } catch {
      // already unusable: nothing more to release
    }
    this.event('error', 'tun_failed', { name: port.device.name, error: err.message, code: err.code, consequence: this.noTunConsequence() });
  }

  /**
   * A session could not move to the native path: it stays on JavaScript's. Said at most once
   * a second (with how many were not said): near the open-file limit every new session is
   * refused alike.
   */
  private nativeRefused(s: Session, err: Error): void {
    const held = this.nativeLog.pass('native_path_failed', Date.now());
    const c = held < 0 ? undefined : [...this.connections].find((x) => x.session === s);
    this.event(held < 0 ? 'quiet' : 'warn', 'native_path_failed', {
      id: c?.id,
      error: err.message,
      fix: 'none needed: the session takes the JavaScript path (SIMPLEVPN_NATIVE_PATH=0 chooses it for every session)',
      more_since_last: held > 0 ? held : undefined,
    });
  }

  private noTunConsequence(): string {
    return `clients can reach each other, but packets to any other address, the server's own ${formatIPv4(this.cfg.gateway)} included, are dropped (counted as no_route)`;
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
