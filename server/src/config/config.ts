// Server options: defaults, validation and the resolved form the server runs on. The CLI,
// the config file and createServer() all pass through resolveConfig(), so a bad value
// gets the same message whichever way it came in.

import { HANDSHAKE_TIMEOUT_S, formatIPv4, formatIPv6, maskPrefix6, parseIPv6, writeU32, parseIPv4, prefixToMask, MAX_FRAME, MIN_MTU, LARGE_MTU, IDLE_TIMEOUT_S, KEEPALIVE_S, PORT, TLS_PORT } from '../../../protocol/index.js';
import { isIP } from 'node:net';
import type { Logger } from '../../../common/log.js';
import { tunNameProblem } from '../../../common/args.js';

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
  /** The VPN's IPv6 subnet, a /64 (a ULA such as fd00:5:6::/64, or a routed prefix): clients that ask get an address in it. Off when absent. */
  subnet6?: string;
  /** IPv6 networks pushed to clients that hold an IPv6 address, as CIDR. */
  routes6?: string[];
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
  /** WebSocket (RFC 6455) on the plain and TLS listeners, beside the raw stream (on unless false). */
  ws?: boolean;
  /**
   * Before listening, switch a few thousand packets between two clients of a throw-away
   * server on loopback, so that the first clients' packets run in optimised code (about
   * 0.5 s of CPU; see server/src/data/warm-up.ts). Off unless true; simplevpn-server turns it
   * on (--no-warm-up turns it off).
   */
  warmUp?: boolean;
  /** The path WebSocket clients connect to ('/'). */
  wsPath?: string;
  /** Browser origins allowed to open a WebSocket (any when none given); a client that sends no Origin is always allowed. */
  wsOrigin?: string | string[];
  /** Reverse proxies, as CIDR (IPv4 or IPv6) or single addresses, whose X-Forwarded-For or Forwarded header names the client. */
  trustProxy?: string | string[];
  /** Auth file (JSON): when set, every client must present credentials it lists. */
  auth?: string;
  /** Connections one source address may hold at once (1024; 0: no limit). */
  maxPerSource?: number;
  /** New connections per second one source address may open, in bursts of twice that (50; 0: no limit). */
  connRate?: number;
  /** Seconds an unfinished frame may take to arrive whole before the connection is closed (the handshake timeout; at most the idle timeout). */
  frameTimeout?: number;
  /** Bytes of unfinished frames held across all connections before the largest holders are closed (256 MiB). */
  frameMemory?: number;
  /** Credential checks (scrypt) per second, server-wide, in bursts of as many (50). */
  authRate?: number;
  /** Where a client may present its secret itself instead of answering a challenge: any connection ('any'), TLS ones only ('tls'), none ('off'). */
  authBearer?: 'any' | 'tls' | 'off';
  /** With auth and mutual TLS: 'cn' (default), a client certificate's subject CN is its auth id and authenticates it alone; 'off', certificates only admit to the TLS listener. */
  certId?: 'cn' | 'off';
  /** State file: leases (and who holds them) survive a restart or a crash of this server. */
  state?: string;
  /** etcd endpoints (http:// or https://HOST:PORT), as a list or one string separated by commas: leases shared by a cluster of servers. */
  etcd?: string | string[];
  /** PEM CA that etcd's certificate must be signed by. */
  etcdCa?: string;
  /** PEM client certificate and key for etcd. */
  etcdCert?: string;
  etcdKey?: string;
  /** What this cluster's keys in etcd start with ('/simplevpn/'). */
  etcdPrefix?: string;
  /** Seconds this server's etcd lease lasts unrenewed: its clients' addresses are freed that long after it stops (10). */
  etcdTtl?: number;
  /** This server's underlay address, where the other servers route its clients' addresses (the local address it reaches etcd from). */
  clusterAdvertise?: string;
  /** This server's name in the cluster (HOSTNAME@ADVERTISE). */
  clusterId?: string;
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
  /** --subnet6, or null: no IPv6 inside the tunnel. */
  subnet6: Subnet6 | null;
  status: { host: string; port: number } | null;
  tls: { cert: string; key: string; ca: string | null } | null;
  tlsPort: number;
  plain: boolean;
  /** WebSocket on the listeners: its path and the browser origins allowed (empty: any); null when off. */
  ws: { path: string; origins: string[] } | null;
  trustProxy: TrustedNet[];
  auth: string | null;
  maxPerSource: number;
  connRate: number;
  /** --state: the state file, or null. */
  state: string | null;
  /** --etcd and its companions, or null. */
  etcd: EtcdConfig | null;
  frameTimeoutMs: number;
  frameMemory: number;
  authRate: number;
  authBearer: 'any' | 'tls' | 'off';
  /** Client certificates name auth ids (subject CN): with auth and mutual TLS, unless --cert-id off. */
  certId: boolean;
  /** Warm the data path up before listening (server/src/data/warm-up.ts). */
  warmUp: boolean;
}

function oneOf<T extends string>(flag: string, v: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(v as T)) fail(`--${flag} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/**
 * The IPv6 subnet. Each client's address is the prefix with its IPv4 address as the last 32
 * bits (so it follows the IPv4 lease: held once, kept across a reconnect), unless it asks
 * for another; the server's own is the same from its IPv4 address.
 */
export interface Subnet6 {
  network: Uint8Array;
  prefix: number;
  gateway: Uint8Array;
  routes: Array<[network: Uint8Array, prefix: number]>;
}

/** A network of trusted reverse proxies. */
export interface TrustedNet {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
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

/** An IPv6 network in CIDR form, host bits clear; `what` names the flag in the message. */
export function parseCidr6(s: string, what: string): { network: Uint8Array; prefix: number } {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(String(s));
  const network = m ? parseIPv6(m[1]) : null;
  const prefix = m ? +m[2] : -1;
  if (network === null || prefix > 128) return fail(`${what} must be an IPv6 network in CIDR form like fd00:5:6::/64, got "${s}"`);
  const masked = maskPrefix6(network, prefix);
  if (formatIPv6(masked) !== formatIPv6(network)) fail(`${what} ${s} has host bits set: did you mean ${formatIPv6(masked)}/${prefix}?`);
  return { network, prefix };
}

/** --subnet6 and --route6: a /64, its gateway from the server's IPv4 address. */
function subnet6(o: ServerOptions, gateway: number): Subnet6 | null {
  const routes = items(o.routes6).map((r) => parseCidr6(r, '--route6'));
  if (o.subnet6 === undefined || o.subnet6 === null || String(o.subnet6) === '') {
    if (routes.length) fail('--route6 needs --subnet6: routes are pushed with an IPv6 address');
    return null;
  }
  const c = parseCidr6(String(o.subnet6), '--subnet6');
  if (c.prefix !== 64) fail(`--subnet6 must be a /64 (each client's address ends in its IPv4 address), got /${c.prefix}`);
  if (items(o.etcd).length) fail('--subnet6 does not go with --etcd yet: the cluster shares IPv4 leases and routes only');
  const gw = c.network.slice();
  writeU32(gw, 12, gateway);
  return { network: c.network, prefix: c.prefix, gateway: gw, routes: routes.map((r) => [r.network, r.prefix]) };
}

/** --frame-timeout: the handshake timeout unless given, and never longer than the idle timeout. */
function frameTimeout(o: ServerOptions, idle: number): number {
  const t = int('frame-timeout', o.frameTimeout ?? Math.min(idle, Number(o.handshakeTimeout ?? HANDSHAKE_TIMEOUT_S)), 1, 3600);
  if (t > idle) fail(`--frame-timeout (${t} s) must not be longer than --idle-timeout (${idle} s), or a client sending a byte at a time holds a frame forever`);
  return t;
}

/** A list option: an array, or one string of items separated by commas or spaces. */
function items(v: unknown): string[] {
  if (v === undefined || v === null || v === false) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(/[\s,]+/)).filter(Boolean);
}

/** --trust-proxy: an IPv4 or IPv6 network in CIDR form, or one address. */
export function parseTrustedNet(s: string): TrustedNet {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(s);
  const family = m ? isIP(m[1]) : 0;
  if (!m || family === 0) return fail(`--trust-proxy must be an IPv4 or IPv6 address or network in CIDR form like 127.0.0.1/32 or ::1, got "${s}"`);
  if (family === 4) {
    const c = parseCidr(m[2] === undefined ? `${m[1]}/32` : s, '--trust-proxy');
    return { address: formatIPv4(c.network), prefix: c.prefix, family: 'ipv4' };
  }
  const prefix = m[2] === undefined ? 128 : +m[2];
  if (prefix > 128) fail(`--trust-proxy ${s}: an IPv6 prefix is at most 128`);
  return { address: m[1], prefix, family: 'ipv6' };
}

/** --ws-origin: an origin as browsers send it, scheme://host[:port], compared in lower case. */
function parseOrigin(s: string): string {
  const o = s.toLowerCase().replace(/\/$/, '');
  let ok = false;
  try {
    ok = new URL(o).origin === o;
  } catch {}
  if (!ok) fail(`--ws-origin must be an origin like https://app.example.net (scheme, host and any port, no path), got "${s}"`);
  return o;
}

/** The WebSocket options: the path, origins and trusted proxies, checked. */
function webSocket(o: ServerOptions): Pick<ResolvedConfig, 'ws' | 'trustProxy'> {
  const on = o.ws !== false && String(o.ws) !== 'false';
  const path = o.wsPath === undefined ? '/' : String(o.wsPath);
  if (!/^\/[\x21-\x7e]*$/.test(path) || /[?#]/.test(path)) fail(`--ws-path must be a path starting with / (no spaces, no ? or #), got "${path}"`);
  const origins = items(o.wsOrigin).map(parseOrigin);
  const trustProxy = items(o.trustProxy).map(parseTrustedNet);
  const given = [o.wsPath !== undefined && '--ws-path', origins.length > 0 && '--ws-origin', trustProxy.length > 0 && '--trust-proxy'].filter((x): x is string => Boolean(x));
  if (!on && given.length) fail(`${given.join(' and ')} ${given.length > 1 ? 'are' : 'is'} for the WebSocket transport, which --no-ws turns off`);
  return { ws: on ? { path, origins } : null, trustProxy };
}

export interface EtcdConfig {
  /** http://HOST:PORT or https://HOST:PORT each. */
  endpoints: string[];
  ca: string | null;
  cert: string | null;
  key: string | null;
  prefix: string;
  ttl: number;
  advertise: string | null;
  id: string | null;
}

/** Where leases are recorded: memory (default), a state file, or etcd. */
function leaseStore(o: ServerOptions): Pick<ResolvedConfig, 'state' | 'etcd'> {
  const etcdOnly = (['etcdCa', 'etcdCert', 'etcdKey', 'etcdPrefix', 'etcdTtl', 'clusterAdvertise', 'clusterId'] as const).filter((k) => o[k] !== undefined);
  const flag = (k: string) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
  const state = o.state ? String(o.state) : null;
  const urls = items(o.etcd);
  if (urls.length === 0) {
    if (etcdOnly.length) fail(`${etcdOnly.map(flag).join(' and ')} ${etcdOnly.length > 1 ? 'go' : 'goes'} with --etcd`);
    return { state, etcd: null };
  }
  if (state) fail('--state and --etcd do not go together: --state keeps the leases of one server in a file, --etcd those of a cluster in etcd');
  const endpoints = urls.map((u) => {
    const url = /^[a-z]+:\/\//i.test(u) ? u : `http://${u}`;
    let ok = false;
    try {
      const x = new URL(url);
      ok = (x.protocol === 'http:' || x.protocol === 'https:') && x.hostname !== '' && x.pathname === '/' && !x.search;
    } catch {}
    if (!ok) fail(`--etcd must be etcd client URLs like http://10.1.0.5:2379, separated by commas, got "${u}"`);
    return url.replace(/\/$/, '');
  });
  if (new Set(endpoints.map((u) => u.startsWith('https:'))).size > 1) fail('--etcd: give every endpoint with https:// or every one with http://');
  if (Boolean(o.etcdCert) !== Boolean(o.etcdKey)) fail('--etcd-cert and --etcd-key go together: give both or neither');
  if ((o.etcdCa || o.etcdCert) && !endpoints[0].startsWith('https:')) fail('--etcd-ca, --etcd-cert and --etcd-key are for TLS: give the --etcd endpoints as https://HOST:PORT');
  const prefix = o.etcdPrefix === undefined ? '/simplevpn/' : String(o.etcdPrefix);
  if (!/^[\x21-\x7e]+\/$/.test(prefix)) fail(`--etcd-prefix must be printable, without spaces, and end with /, like /simplevpn/, got "${prefix}"`);
  const advertise = o.clusterAdvertise === undefined ? null : String(o.clusterAdvertise);
  if (advertise !== null && parseIPv4(advertise) < 0) fail(`--cluster-advertise must be an IPv4 address (this server's address on the network between the servers), got "${advertise}"`);
  const id = o.clusterId === undefined ? null : String(o.clusterId);
  if (id !== null && !/^[\w.@:-]{1,64}$/.test(id)) fail(`--cluster-id must be 1 to 64 letters, digits or . _ @ : -, got "${id}"`);
  return {
    state: null,
    etcd: {
      endpoints,
      ca: o.etcdCa ? String(o.etcdCa) : null,
      cert: o.etcdCert ? String(o.etcdCert) : null,
      key: o.etcdKey ? String(o.etcdKey) : null,
      prefix,
      ttl: int('etcd-ttl', o.etcdTtl ?? 10, 2, 3600),
      advertise,
      id,
    },
  };
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
  const badTun = tun === null ? null : tunNameProblem(tun);
  if (badTun) fail(badTun);
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
    subnet6: subnet6(o, gateway >>> 0),
    status: o.status ? parseHostPort(o.status, 'status') : null,
    tls,
    tlsPort: int('tls-port', o.tlsPort ?? TLS_PORT, 0, 65535),
    plain,
    ...webSocket(o),
    auth: o.auth ? String(o.auth) : null,
    maxPerSource: int('max-per-source', o.maxPerSource ?? 1024, 0, 1 << 24),
    connRate: int('conn-rate', o.connRate ?? 50, 0, 1 << 20),
    ...leaseStore(o),
    frameTimeoutMs: frameTimeout(o, idle) * 1000,
    frameMemory: int('frame-memory', o.frameMemory ?? 256 * 1024 * 1024, MAX_FRAME, 2 ** 40),
    authRate: int('auth-rate', o.authRate ?? 50, 1, 1 << 20),
    authBearer: oneOf('auth-bearer', o.authBearer ?? 'any', ['any', 'tls', 'off'] as const),
    certId: oneOf('cert-id', o.certId ?? 'cn', ['cn', 'off'] as const) === 'cn' && Boolean(o.auth) && Boolean(tls?.ca),
    warmUp: o.warmUp === true || String(o.warmUp) === 'true',
  };
}
