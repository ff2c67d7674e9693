// Server options: defaults, validation and the resolved form the server runs on. The CLI,
// the config file and createServer() all pass through resolveConfig(), so a bad value
// gets the same message whichever way it came in.

import { HANDSHAKE_TIMEOUT_S, formatIPv4, parseIPv4, prefixToMask, MAX_FRAME, MIN_MTU, LARGE_MTU, IDLE_TIMEOUT_S, KEEPALIVE_S, PORT, TLS_PORT } from '../../../protocol/index.js';
import type { Logger } from '../../../common/log.js';

export interface ServerOptions {
  /** TCP port (2002). */
  port?: number;
  /** Addresses to listen on; default every IPv4 and IPv6 address. */
  host?: string | string[];
  /** The VPN subnet, /8 to /30 (10.0.0.0/16). */
  subnet?: string;
  /** The server's own VPN address (the subnet's first host). */
  address?: string;
  /** TUN device name, a kernel pattern such as 'svpn%d' (the default), or false for none. */
  tun?: string | false;
  /**
   * The largest MTU a client is granted, and the MTU of the server's tun (65000). Each
   * client gets what it asks for within it (1500 when it does not ask, as seed clients
   * cannot); packets too big for their destination get ICMP or are fragmented.
   */
  mtu?: number;
  /** Seconds of silence after which a client is dropped and its address freed (60). */
  idleTimeout?: number;
  /** Keepalive interval pushed to clients, seconds (15). */
  keepalive?: number;
  /** Seconds a new connection has to send its address request (10). */
  handshakeTimeout?: number;
  /** Clients holding an address at once (as many as the subnet has addresses). */
  maxClients?: number;
  /** Largest frame accepted, bytes (65535). */
  maxFrame?: number;
  /** Bytes queued towards one client before its packets are dropped (256 KiB; at least
   * 128 KiB, room for one 64 KiB read switched to it plus what is still in flight). */
  sendQueue?: number;
  /** Extra networks pushed to clients as routes through the tunnel, as CIDR. */
  routes?: string[];
  /** HOST:PORT (or PORT, on loopback) for /metrics and /clients; off when absent. */
  status?: string | false;
  /** PEM certificate and key files: a TLS listener runs on tlsPort beside the plain one. */
  tlsCert?: string;
  tlsKey?: string;
  /** PEM CA file: TLS clients must present a certificate it signed (mutual TLS). */
  tlsCa?: string;
  /** Port of the TLS listener (2003). */
  tlsPort?: number;
  /** The plain TCP listener, for seed devices (on unless false). */
  plain?: boolean;
  /** Auth file (JSON): when set, every client must present credentials it lists. */
  auth?: string;
  /** Connections one source address may hold at once (1024; 0: no limit). */
  maxPerSource?: number;
  /** New connections per second one source address may open, in bursts of twice that (50; 0: no limit). */
  connRate?: number;
  logger?: Logger;
}

export interface Cidr {
  network: number;
  prefix: number;
}

export interface ResolvedConfig {
  port: number;
  hosts: string[];
  subnet: Cidr;
  gateway: number;
  tun: string | null;
  mtu: number;
  idleTimeoutMs: number;
  keepalive: number;
  handshakeTimeoutMs: number;
  maxClients: number;
  maxFrame: number;
  sendQueue: number;
  routes: Cidr[];
  status: { host: string; port: number } | null;
  tls: { cert: string; key: string; ca: string | null } | null;
  tlsPort: number;
  plain: boolean;
  auth: string | null;
  maxPerSource: number;
  connRate: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const fail = (msg: string): never => {
  throw new ConfigError(msg);
};

export function parseCidr(s: string, what = 'subnet'): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(String(s));
  const network = m ? parseIPv4(m[1]) : -1;
  const prefix = m ? +m[2] : -1;
  if (network < 0 || prefix > 32) fail(`${what} must be an IPv4 network in CIDR form like 10.0.0.0/16, got "${s}"`);
  if ((network & ~prefixToMask(prefix)) >>> 0 !== 0) fail(`${what} ${s} has host bits set: did you mean ${formatIPv4((network & prefixToMask(prefix)) >>> 0)}/${prefix}?`);
  return { network, prefix };
}

function int(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) fail(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n as number;
}

export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const str = String(s);
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(str) ?? /^()()(\d+)$/.exec(str);
  if (!m) return fail(`--${what} must be HOST:PORT or PORT, got "${s}"`);
  return { host: m[1] || m[2] || '127.0.0.1', port: int(what, m[3], 0, 65535) };
}

export function resolveConfig(o: ServerOptions): ResolvedConfig {
  const subnet = parseCidr(o.subnet ?? '10.0.0.0/16');
  if (subnet.prefix < 8 || subnet.prefix > 30) fail(`--subnet prefix must be from /8 to /30, got /${subnet.prefix}`);
  const span = 2 ** (32 - subnet.prefix);
  let gateway = subnet.network + 1;
  if (o.address !== undefined) {
    gateway = parseIPv4(o.address);
    if (gateway < 0) fail(`--address must be an IPv4 address, got "${o.address}"`);
    const off = gateway - subnet.network;
    if (off <= 0 || off >= span - 1) fail(`--address ${o.address} is not a host address of the subnet ${formatIPv4(subnet.network)}/${subnet.prefix}`);
  }
  const maxFrame = int('max-frame', o.maxFrame ?? MAX_FRAME, MIN_MTU, MAX_FRAME);
  const mtu = int('mtu', o.mtu ?? Math.min(LARGE_MTU, maxFrame), MIN_MTU, MAX_FRAME);
  if (maxFrame < mtu) fail(`--max-frame (${maxFrame}) must not be smaller than --mtu (${mtu})`);
  const idle = int('idle-timeout', o.idleTimeout ?? IDLE_TIMEOUT_S, 2, 65535);
  const keepalive = int('keepalive', o.keepalive ?? Math.min(KEEPALIVE_S, Math.max(1, Math.floor(idle / 4))), 1, 65535);
  if (keepalive >= idle) fail(`--keepalive (${keepalive} s) must be shorter than --idle-timeout (${idle} s), or clients are dropped between keepalives`);
  const tun = o.tun === false ? null : (o.tun ?? 'svpn%d');
  if (tun !== null && (typeof tun !== 'string' || tun.length === 0 || tun.length > 15 || /[\s/:]/.test(tun)))
    fail(`--tun must be a device name of 1 to 15 characters without spaces, '/' or ':', got "${tun}"`);
  const hosts = o.host === undefined ? [] : Array.isArray(o.host) ? o.host.map(String) : [String(o.host)];
  const routes = (o.routes ?? []).map((r) => parseCidr(r, '--route'));
  if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) fail('--tls-cert and --tls-key go together: give both or neither');
  if (o.tlsCa && !o.tlsCert) fail('--tls-ca needs --tls-cert and --tls-key: mutual TLS runs on the TLS listener');
  const tls = o.tlsCert ? { cert: String(o.tlsCert), key: String(o.tlsKey), ca: o.tlsCa ? String(o.tlsCa) : null } : null;
  const plain = o.plain !== false && String(o.plain) !== 'false';
  if (!plain && !tls) fail('--no-plain leaves no listener: give --tls-cert and --tls-key for the TLS one');
  return {
    port: int('port', o.port ?? PORT, 0, 65535),
    hosts,
    subnet,
    gateway: gateway >>> 0,
    tun,
    mtu,
    idleTimeoutMs: idle * 1000,
    keepalive,
    handshakeTimeoutMs: int('handshake-timeout', o.handshakeTimeout ?? HANDSHAKE_TIMEOUT_S, 1, 3600) * 1000,
    maxClients: int('max-clients', o.maxClients ?? span, 1, span),
    maxFrame,
    sendQueue: int('send-queue', o.sendQueue ?? 256 * 1024, 128 * 1024, 1 << 30),
    routes,
    status: o.status ? parseHostPort(o.status, 'status') : null,
    tls,
    tlsPort: int('tls-port', o.tlsPort ?? TLS_PORT, 0, 65535),
    plain,
    auth: o.auth ? String(o.auth) : null,
    maxPerSource: int('max-per-source', o.maxPerSource ?? 1024, 0, 1 << 24),
    connRate: int('conn-rate', o.connRate ?? 50, 0, 1 << 20),
  };
}
