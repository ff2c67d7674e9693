// simplevpn-client's command line: every flag checked, in one typed settings object. Bad
// usage ends the program with exit status 2 (through `usage`, which tests replace).

import mri from 'mri';
import { LARGE_MTU, MAX_FRAME, MIN_MTU, PORT, TLS_PORT, ipv6Request, parseIPv4, parseIPv6 } from '../../protocol/index.js';
import { type CredentialSettings, parseCredentials } from './auth.js';
import { type Usage, checkValues, logOptions, readFlagFile, tunNameProblem, unknownOption, usageFor } from '../../common/args.js';
import type { Level, LogFormat } from '../../common/log.js';
import { noProxy, parseProxyUrl } from '../../client-sdk/node/proxy.js';

export const PROGRAM = 'simplevpn-client';

export const HELP = `Usage: simplevpn-client -s SERVER [options]

Connects this machine to a simplevpn server: creates a tun device, gets an address from
the server (or asks for the one given with -a), configures the device with the netmask,
MTU and routes the server pushes, and keeps the link up, reconnecting when it drops.
Needs root or CAP_NET_ADMIN.

Options:
  -s, --server HOST|URL      the server's host name or address, IPv4 or IPv6 (fd00::1 or
                             [fd00::1]; required), or a URL whose
                             scheme picks the transport: tcp://, tls://, ws://HOST[:PORT]/PATH,
                             wss://HOST[:PORT]/PATH. Servers of a cluster: -s A,B,C (or a
                             name with several addresses): when the server in use is gone,
                             the client moves to the next and keeps its address
  -p, --port PORT            the server's port (2002 for tcp, 2003 for tls; 80 for ws, 443 for
                             wss, as a reverse proxy listens: give -p 2002 or 2003 to reach
                             simplevpn-server's own ports)
      --transport T          tcp, tls, ws or wss (tcp; --tls is --transport tls): ws and wss
                             carry the stream in a WebSocket, for networks that let out only
                             web traffic
      --path PATH            the WebSocket path for ws/wss (/; the server's --ws-path)
      --proxy URL            reach the server through an HTTP proxy's CONNECT tunnel:
                             http://[user:pass@]host:port. Without it, https_proxy (or
                             HTTPS_PROXY) is used for tls and wss, http_proxy (or HTTP_PROXY)
                             for tcp and ws, unless NO_PROXY lists the server
      --no-proxy             ignore the proxy environment variables
  -a, --address ADDR         ask for this VPN address instead of any free one
      --address6 ADDR        ask for this IPv6 address instead of the one the server
                             derives from the IPv4 address (servers with --subnet6)
      --no-ipv6              do not ask for IPv6 (asked for by default: a server with
                             --subnet6 grants an IPv6 address and routes, others ignore it)
      --tun NAME             name of the tun device (svpn%d: the kernel numbers it)
      --mtu BYTES            the tunnel MTU to ask for (65000; the server may grant less):
                             large packets are what makes IP-in-TCP fast
      --keepalive SEC        seconds of silence before a keepalive, unless the server
                             pushes its own interval (15)
      --timeout SEC          how long to wait for a connection, a reply or a keepalive
                             answer before reconnecting (10)
      --max-backoff SEC      longest wait between reconnect attempts (60)
      --name NAME            a name for this client in the server's log
      --seed                 speak only the original protocol (no pushed configuration)
      --offload              open the tun with TUN offloads (TSO and checksum offload):
                             the kernel hands over TCP super-packets of up to 64 KiB, split
                             here, and takes coalesced ones; faster at small MTUs. Falls
                             back to a plain tun, with a warning, where the kernel refuses

Security:
      --tls                  connect over TLS and verify the server's certificate
                             (the --ca, --cert, --key and --servername below apply to
                             tls and wss)
      --ca FILE              PEM CA that signed the server's certificate (default: the
                             system's trusted roots)
      --cert FILE            PEM certificate of this client, for mutual TLS
      --key FILE             PEM private key of --cert
      --servername NAME      name the server's certificate must carry (default: -s)
      --id ID                this client's id in the server's auth file (with --cert
                             and no secret: the id the certificate names)
      --secret-file FILE     file holding this client's secret (or set SIMPLEVPN_SECRET);
                             never on the command line, where ps would show it. The
                             client proves it by answering the server's challenge
      --device-key-file FILE file holding this client's device key (the "key" printed by
                             simplevpn-server --new-device-key), instead of a secret
      --bearer               present the secret itself, as servers from before
                             challenge-response expect (over TLS only)
      --log-format FORMAT    text or json (text)
      --log-level LEVEL      debug, info, warn or error (info)
  -h, --help                 show this help
  -v, --version              show the version

Examples:
  sudo simplevpn-client -s vpn.example.net
  sudo simplevpn-client -s vpn.example.net -a 10.0.3.7
  sudo simplevpn-client -s vpn1.example.net,vpn2.example.net,vpn3.example.net
  sudo simplevpn-client -s vpn.example.net --tls --ca ca.pem --id sensor-7 --secret-file secret
  sudo simplevpn-client -s wss://vpn.example.net/vpn --ca ca.pem
  sudo simplevpn-client -s vpn.example.net --proxy http://proxy.example.net:3128

Exit status: 0 after SIGINT or SIGTERM, 1 on failure (no tun device or no privilege),
2 on bad usage, 3 when, before the link is first up, the server refuses for a reason
retrying cannot fix (the address asked for with -a is in use or not allowed, the
credentials are wrong) or a setting is wrong (the server's certificate is not trusted or
not for the name dialled: see --ca and --servername; --tls on a plain port, or no --tls on
a TLS port; an HTTP proxy that wants credentials or refuses the server's port).
`;

const STRINGS = [
  'server',
  'port',
  'address',
  'address6',
  'tun',
  'keepalive',
  'timeout',
  'max-backoff',
  'mtu',
  'name',
  'ca',
  'cert',
  'key',
  'servername',
  'id',
  'secret-file',
  'device-key-file',
  'log-format',
  'log-level',
  'transport',
  'path',
  'proxy',
];

export type Transport = 'tcp' | 'tls' | 'ws' | 'wss';
const TRANSPORTS: Transport[] = ['tcp', 'tls', 'ws', 'wss'];
const DEFAULT_PORT: Record<Transport, number> = { tcp: PORT, tls: TLS_PORT, ws: 80, wss: 443 };

/** One server of -s, as dialled. */
export interface ServerEndpoint {
  /** The server's host name or address, and its port. */
  host: string;
  port: number;
  /** HOST:PORT as dialled, for log lines ([HOST]:PORT for an IPv6 address). */
  server: string;
  /** The WebSocket's URL, for ws and wss. */
  url?: string;
  /** The HTTP proxy (http://[user:pass@]host:port) whose CONNECT tunnel the connection runs in. */
  proxy?: string;
}

/** The settings; the fields of ServerEndpoint are the first server's. */
export interface ClientSettings extends ServerEndpoint {
  /** Every server of -s a,b,c, in order (one for -s HOST): the client moves to the next when its own is gone. */
  servers: ServerEndpoint[];
  /** The address to ask for (-a), or undefined for any free one. */
  address?: string;
  /** The request's IPv6 TLV value (empty: any IPv6 address), or undefined: --no-ipv6 or --seed. */
  ipv6?: Uint8Array;
  /** The tun device's name, or a pattern (svpn%d). */
  tun: string;
  /** The MTU to ask for. */
  mtu: number;
  /** Seconds; undefined: the SDK's defaults. */
  keepalive?: number;
  timeout?: number;
  maxBackoff?: number;
  name?: string;
  seed: boolean;
  /** Open the tun with offloads (IFF_VNET_HDR, TSO): --offload. */
  offload: boolean;
  /** How the stream travels; `url` is the WebSocket's for ws and wss. */
  transport: Transport;
  /** TLS (for tls and wss), with the files' contents; null otherwise. */
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } | null;
  credentials?: CredentialSettings;
  log: { format: LogFormat; level: Level };
}

/**
 * Reads the command line: 'help' or 'version' when asked for, else the settings. `env` is
 * where SIMPLEVPN_SECRET comes from. Files named by flags are read here, so that a missing
 * one is bad usage before anything is opened.
 */
export function parseClientArgs(argv: string[], env: Record<string, string | undefined> = process.env, usage: Usage = usageFor(PROGRAM)): ClientSettings | 'help' | 'version' {
  const args = mri(argv, {
    alias: { s: 'server', p: 'port', a: 'address', h: 'help', v: 'version' },
    boolean: ['help', 'version', 'seed', 'tls', 'bearer', 'offload', 'ipv6'],
    string: [...STRINGS], // a copy: mri appends the aliases to it
  });
  const bad = unknownOption(args, [...STRINGS, 'help', 'version', 'seed', 'tls', 'bearer', 'offload', 'ipv6', 's', 'p', 'a', 'h', 'v'], argv);
  if (bad) usage(`unknown option ${bad}`);
  if (args.help) return 'help';
  if (args.version) return 'version';
  if (args._.length) usage(`unexpected argument "${args._[0]}"`);
  checkValues(usage, args, STRINGS);
  if (!args.server) usage('the server is required: -s HOST');
  let transport: Transport = args.tls ? 'tls' : 'tcp';
  if (args.transport !== undefined) {
    if (!TRANSPORTS.includes(args.transport)) usage(`--transport must be tcp, tls, ws or wss, got "${args.transport}"`);
    if (args.tls && args.transport !== 'tls') usage(`--tls and --transport ${args.transport} disagree: --tls is --transport tls`);
    transport = args.transport;
  }
  // -s a,b,c: the servers of one cluster, each parsed alone; one transport for all.
  const entries = String(args.server).split(',');
  if (entries.some((e) => !e.trim())) usage(`-s ${args.server}: an empty server in the list`);
  const parsed: Array<{ host: string; urlPort?: string; path?: string }> = [];
  let schemeSeen: string | undefined;
  for (const entry of entries) {
    // An IPv6 address may come in brackets, as in a URL: -s [fd00::1].
    let host = entry.trim().replace(/^\[([0-9a-fA-F:.]+)\]$/, '$1');
    let urlPort: string | undefined;
    let path = args.path as string | undefined;
    const scheme = /^([a-z]+):\/\//i.exec(host)?.[1].toLowerCase();
    if (entries.length > 1 && (scheme ?? 'none') !== (schemeSeen ??= scheme ?? 'none')) usage(`-s ${args.server}: every server in the list must have the same scheme (or none)`);
    if (scheme) {
      if (!TRANSPORTS.includes(scheme as Transport)) usage(`-s ${host}: the scheme must be tcp://, tls://, ws:// or wss://`);
      if (args.transport !== undefined && args.transport !== scheme) usage(`-s ${host} and --transport ${args.transport} disagree`);
      if (args.tls && scheme !== 'tls') usage(`-s ${host} and --tls disagree`);
      let u: URL;
      try {
        u = new URL(host);
      } catch {
        return usage(`-s ${host} is not a URL`);
      }
      if (!u.hostname) usage(`-s ${host}: no host`);
      transport = scheme as Transport;
      host = u.hostname.replace(/^\[|\]$/g, '');
      urlPort = u.port || undefined;
      if (urlPort && args.port !== undefined && Number(args.port) !== Number(urlPort)) usage(`-s ${args.server} and --port ${args.port} disagree`);
      if ((u.pathname !== '/' && u.pathname !== '') || u.search) {
        if (transport !== 'ws' && transport !== 'wss') usage(`-s ${args.server}: a path is for ws:// and wss:// only`);
        if (path !== undefined) usage(`-s ${args.server} and --path ${path} disagree`);
        path = u.pathname + u.search;
      }
    }
    parsed.push({ host, urlPort, path });
  }
  const ws = transport === 'ws' || transport === 'wss';
  const secure = transport === 'tls' || transport === 'wss';
  const servers = parsed.map(({ host, urlPort, path }): ServerEndpoint => {
    if (path !== undefined && !ws) usage('--path is for --transport ws or wss');
    if (path !== undefined && !path.startsWith('/')) usage(`--path must start with /, got "${path}"`);
    const port = Number(args.port ?? urlPort ?? DEFAULT_PORT[transport]);
    if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`--port must be from 1 to 65535, got "${args.port}"`);
    // mri reads --no-proxy as proxy = false.
    let proxy: string | undefined = typeof args.proxy === 'string' ? args.proxy : undefined;
    if (proxy === undefined && args.proxy !== false) {
      const fromEnv = secure ? (env.https_proxy ?? env.HTTPS_PROXY) : (env.http_proxy ?? env.HTTP_PROXY);
      if (fromEnv && !noProxy(host, env.no_proxy ?? env.NO_PROXY)) proxy = fromEnv.includes('://') ? fromEnv : `http://${fromEnv}`;
    }
    if (proxy !== undefined) {
      try {
        parseProxyUrl(proxy);
      } catch (e) {
        usage(`--proxy: ${(e as Error).message}`);
      }
    }
    const hostPort = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    return { host, port, server: hostPort, url: ws ? `${transport}://${hostPort}${path ?? '/'}` : undefined, proxy };
  });
  if (args.address !== undefined && parseIPv4(args.address) <= 0) usage(`--address must be an IPv4 address, got "${args.address}"`);
  if (args.ipv6 === true) usage('--ipv6 is the default; use --no-ipv6 not to ask for IPv6');
  if (args.address6 !== undefined && parseIPv6(args.address6) === null) usage(`--address6 must be an IPv6 address, got "${args.address6}"`);
  if (args.address6 !== undefined && (args.ipv6 === false || args.seed)) usage(`--address6 and ${args.seed ? '--seed' : '--no-ipv6'} disagree`);
  const ipv6 = args.ipv6 === false || args.seed ? undefined : ipv6Request(args.address6);
  const log = logOptions(usage, args['log-format'], args['log-level']);
  const tun = String(args.tun ?? 'svpn%d');
  const badTun = tunNameProblem(tun);
  if (badTun) usage(badTun);
  const seconds = (name: string, min: number, max: number): number | undefined => {
    const v = args[name];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) usage(`--${name} must be a number of seconds from ${min} to ${max}, got "${v}"`);
    return n;
  };
  const keepalive = seconds('keepalive', 1, 65535);
  const timeout = seconds('timeout', 1, 3600);
  const maxBackoff = seconds('max-backoff', 1, 86400);
  const mtu = Number(args.mtu ?? LARGE_MTU);
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_FRAME) usage(`--mtu must be a whole number from ${MIN_MTU} to ${MAX_FRAME}, got "${args.mtu}"`);
  for (const k of ['ca', 'cert', 'key', 'servername']) if (args[k] !== undefined && !secure) usage(`--${k} needs --tls`);
  if (Boolean(args.cert) !== Boolean(args.key)) usage('--cert and --key go together');
  const credentials = parseCredentials(usage, args, env, Boolean(args.cert));
  const file = (flag: string) => (args[flag] ? readFlagFile(usage, flag, args[flag]) : undefined);
  return {
    ...servers[0]!,
    servers,
    transport,
    address: args.address,
    ipv6,
    tun,
    mtu,
    keepalive,
    timeout,
    maxBackoff,
    name: args.name,
    seed: Boolean(args.seed),
    offload: Boolean(args.offload),
    tls: secure ? { ca: file('ca'), cert: file('cert'), key: file('key'), servername: args.servername } : null,
    credentials,
    log,
  };
}
