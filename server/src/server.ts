// The server: listeners, the address pool, the routing table, the server's own tun,
// session lifecycle and the events an operator sees in the log.

import { EventEmitter } from 'node:events';
import net from 'node:net';
import {
  KIND_REQUEST,
  KIND_REPLY,
  REFUSE_EXHAUSTED,
  REFUSE_FULL,
  REFUSE_IN_USE,
  REFUSE_OUTSIDE,
  REFUSE_SHUTDOWN,
  T_CLIENT,
  configTlvs,
  eachTlv,
  extKind,
  extMessage,
  readAscii,
  refusal,
} from '../../client-sdk/src/control.js';
import { ANY, DST, SRC, formatIPv4, readU32, writeU32 } from '../../client-sdk/src/ipv4.js';
import { AddressPool } from './address-pool.js';
import { ResolvedConfig, ServerOptions, resolveConfig } from './config.js';
import { type Fields, type Level, type Logger, silentLogger } from './log.js';
import { Metrics } from './metrics.js';
import { RoutingTable } from './routing-table.js';
import { type EndCode, type Hub, Session } from './session.js';
import { startStatus } from './status.js';

/** The part of a TUN device the server uses (linux/tun.ts provides it). */
export interface ServerTun {
  readonly name: string;
  write(packet: Uint8Array): boolean;
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

/** A refusal: the code sent to extension clients and the reason counted and logged. */
interface Refusal {
  code: number;
  reason: string;
  text: string;
}

export interface ClientInfo {
  id: number;
  address: string | null;
  remote: string;
  protocol: 'simplevpn' | 'seed';
  name: string;
  connectedSince: string;
  lastSeen: string;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  drops: number;
}

const REFUSAL_REASONS: Record<number, string> = {
  [REFUSE_IN_USE]: 'address_in_use',
  [REFUSE_OUTSIDE]: 'address_outside_subnet',
  [REFUSE_EXHAUSTED]: 'pool_exhausted',
  [REFUSE_FULL]: 'max_clients',
  [REFUSE_SHUTDOWN]: 'shutting_down',
};

const SPOOF_LOG_INTERVAL_MS = 10_000;

export class VpnServer extends EventEmitter implements Hub {
  readonly cfg: ResolvedConfig;
  readonly metrics = new Metrics();
  readonly table = new RoutingTable<Session>();
  readonly pool: AddressPool;
  toTun: ((packet: Uint8Array) => void) | null = null;
  tun: ServerTun | null = null;
  private readonly logger: Logger;
  private readonly openTunImpl: OpenTun | undefined;
  private readonly sessions = new Set<Session>();
  /** Refused connections whose refusal is still being flushed; close() cuts them short. */
  private readonly lingering = new Set<net.Socket>();
  private readonly servers: net.Server[] = [];
  private status: { close(): Promise<void>; address: string } | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  private nextId = 1;
  private closing = false;

  constructor(options: CreateServerOptions = {}) {
    super();
    this.cfg = resolveConfig(options);
    this.logger = options.logger ?? silentLogger;
    this.openTunImpl = options.openTun;
    this.pool = new AddressPool(this.cfg.subnet.network, this.cfg.subnet.prefix, [this.cfg.gateway]);
  }

  /** Opens the tun (or says why not), the listeners and the status listener. */
  async listen(): Promise<void> {
    await this.startTun();
    const hosts = this.cfg.hosts.length ? this.cfg.hosts : [null];
    for (const host of hosts) this.servers.push(await this.listenOn(host));
    const sweep = Math.max(100, Math.min(1000, this.cfg.idleTimeoutMs / 4, this.cfg.handshakeTimeoutMs / 4));
    this.sweeper = setInterval(() => this.sweep(), sweep);
    this.sweeper.unref();
    if (this.cfg.status) {
      this.status = await startStatus(this, this.cfg.status.host, this.cfg.status.port);
      this.event('info', 'status_listening', { address: this.status.address });
    }
    const c = this.cfg;
    this.event('info', 'listening', {
      addresses: this.addresses()
        .map((a) => (a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`))
        .join(','),
      subnet: `${formatIPv4(c.subnet.network)}/${c.subnet.prefix}`,
      gateway: formatIPv4(c.gateway),
      tun: this.tun?.name ?? 'none',
      mtu: c.mtu,
      idle_timeout: c.idleTimeoutMs / 1000,
      keepalive: c.keepalive,
    });
  }

  /** Where the listeners are bound (useful with port 0). */
  addresses(): net.AddressInfo[] {
    return this.servers.map((l) => l.address() as net.AddressInfo);
  }

  get port(): number {
    return this.addresses()[0]?.port ?? 0;
  }

  get statusAddress(): string | null {
    return this.status?.address ?? null;
  }

  /** Closes listeners and sessions, removes the tun. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.sweeper) clearInterval(this.sweeper);
    const closed = this.servers.map((l) => new Promise<void>((r) => l.close(() => r())));
    for (const s of [...this.sessions]) s.end('shutdown', 'server shutting down');
    for (const sock of this.lingering) sock.destroy();
    await Promise.all(closed);
    if (this.status) await this.status.close();
    if (this.tun) {
      this.tun.close();
      this.event('info', 'tun_closed', { name: this.tun.name });
      this.tun = null;
      this.toTun = null;
    }
    this.event('info', 'stopped', {});
  }

  clients(): ClientInfo[] {
    return [...this.sessions].map((s) => ({
      id: s.id,
      address: s.address ? formatIPv4(s.address) : null,
      remote: s.remote,
      protocol: s.extended ? 'simplevpn' : 'seed',
      name: s.name,
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
    const ext = extKind(frame) === KIND_REQUEST;
    const wanted = readU32(frame, SRC);
    if (s.address !== ANY) return this.reply(s, frame, ext); // a repeated request: same answer
    s.extended = ext;
    s.coalesce = ext;
    if (ext) {
      eachTlv(frame, (t, v) => {
        if (t === T_CLIENT) s.name = readAscii(v);
      });
    }
    const refused = this.assign(s, wanted);
    if (refused) return this.refuse(s, wanted, refused);
    this.reply(s, frame, ext);
    this.event('info', 'assign', {
      id: s.id,
      remote: s.remote,
      address: formatIPv4(s.address),
      mode: wanted ? 'static' : 'dynamic',
      protocol: ext ? 'simplevpn' : 'seed',
      name: s.name || undefined,
    });
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

  ended(s: Session, code: string, detail: string): void {
    if (!this.sessions.delete(s)) return;
    if (s.address !== ANY) {
      this.table.unbind(s.address, s);
      this.pool.release(s.address);
    }
    this.metrics.disconnected(code);
    this.event('info', 'disconnect', {
      id: s.id,
      remote: s.remote,
      address: s.address ? formatIPv4(s.address) : null,
      reason: code,
      detail,
      rx_bytes: s.rxBytes,
      tx_bytes: s.txBytes,
      duration_s: Math.round((Date.now() - s.since) / 100) / 10,
    });
  }

  // ---- internals ----

  /** Gives `s` an address: `wanted`, or any when 0. Returns the refusal, if refused. */
  private assign(s: Session, wanted: number): Refusal | null {
    if (this.table.size >= this.cfg.maxClients)
      return { code: REFUSE_FULL, reason: REFUSAL_REASONS[REFUSE_FULL], text: `server full: ${this.cfg.maxClients} clients` };
    let addr = wanted;
    if (wanted !== ANY) {
      if (!this.pool.assignable(wanted))
        return { code: REFUSE_OUTSIDE, reason: REFUSAL_REASONS[REFUSE_OUTSIDE], text: `address ${formatIPv4(wanted)} is outside the subnet or reserved` };
      if (!this.pool.take(wanted))
        return { code: REFUSE_IN_USE, reason: REFUSAL_REASONS[REFUSE_IN_USE], text: `address ${formatIPv4(wanted)} is in use` };
    } else {
      addr = this.pool.allocate();
      if (addr === 0) return { code: REFUSE_EXHAUSTED, reason: REFUSAL_REASONS[REFUSE_EXHAUSTED], text: 'no free address left in the subnet' };
    }
    s.address = addr;
    this.table.bind(addr, s);
    return null;
  }

  /** The reply to a granted request: the seed's echo, or the extension's configuration. */
  private reply(s: Session, request: Uint8Array, ext: boolean): void {
    if (ext) {
      const c = this.cfg;
      const msg = extMessage(
        ANY,
        s.address,
        KIND_REPLY,
        configTlvs({
          prefix: c.subnet.prefix,
          gateway: c.gateway,
          mtu: c.mtu,
          keepalive: c.keepalive,
          idleTimeout: c.idleTimeoutMs / 1000,
          routes: c.routes.map((r) => [r.network, r.prefix]),
        }),
      );
      s.writeNow(msg);
    } else {
      // The seed echoes the request with the destination set to the address, source 0.
      const msg = Uint8Array.from(request);
      writeU32(msg, SRC, ANY);
      writeU32(msg, DST, s.address);
      s.writeNow(msg);
    }
  }

  private refuse(s: Session, wanted: number, r: Refusal): void {
    this.metrics.refused(r.reason);
    this.event('warn', 'refuse', {
      id: s.id,
      remote: s.remote,
      requested: wanted ? formatIPv4(wanted) : 'any',
      reason: r.reason,
      detail: r.text,
      protocol: s.extended ? 'simplevpn' : 'seed',
    });
    // Seed clients are refused the seed's way: the connection closes with no reply.
    if (!s.extended) return s.end('refused', r.reason);
    s.end('refused', r.reason, refusal(wanted, r.code, r.text));
    const sock = s.socket;
    if (!sock.destroyed) {
      this.lingering.add(sock);
      sock.once('close', () => this.lingering.delete(sock));
    }
  }

  private onConnection(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.closing) {
      socket.destroy();
      return;
    }
    const s = new Session(this.nextId++, socket, remote, this);
    this.sessions.add(s);
    this.metrics.connections++;
    this.event('info', 'connect', { id: s.id, remote });
  }

  /** Closes sessions that went silent, or never asked for an address. */
  private sweep(): void {
    const now = Date.now();
    const idle = this.cfg.idleTimeoutMs;
    const hs = this.cfg.handshakeTimeoutMs;
    for (const s of this.sessions) {
      const quiet = now - s.lastRx;
      if (s.address === ANY) {
        if (now - s.since >= hs) s.end('handshake_timeout', `no address request within ${hs / 1000} s`);
      } else if (quiet >= idle) {
        s.end('idle_timeout', `nothing received for ${Math.round(quiet / 1000)} s`);
      }
    }
  }

  private listenOn(host: string | null): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const srv = net.createServer({ noDelay: true }, (sock) => this.onConnection(sock));
      const attempt = (h: string) => {
        const onError = (err: NodeJS.ErrnoException) => {
          // No IPv6 on this host: every IPv4 address instead.
          if (host === null && h === '::' && (err.code === 'EAFNOSUPPORT' || err.code === 'EADDRNOTAVAIL')) return attempt('0.0.0.0');
          reject(err);
        };
        srv.once('error', onError);
        srv.listen({ host: h, port: this.cfg.port, ipv6Only: false }, () => {
          srv.off('error', onError);
          srv.on('error', (err) => this.event('error', 'listener_error', { error: err.message }));
          resolve(srv);
        });
      };
      attempt(host ?? '::');
    });
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
    this.toTun = (p) => {
      if (tun.write(p)) m.tunTxPackets++;
      else m.drops.tun_full++;
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
      if (peer !== undefined) peer.deliver(p, 1);
      else m.drops.no_route++;
    }
    this.table.flush();
  }

  private event(level: Level, name: string, fields: Fields): void {
    this.logger.log(level, name, fields);
    this.emit(name, fields);
  }
}

export function createServer(options: CreateServerOptions = {}): VpnServer {
  return new VpnServer(options);
}

export type { EndCode };
