// simplevpn-client's command line: every flag checked, in one typed settings object. Bad
// usage ends the program with exit status 2 (through `usage`, which tests replace).

import mri from 'mri';
import { LARGE_MTU, MAX_FRAME, MIN_MTU, PORT, TLS_PORT, parseIPv4 } from '../../protocol/index.js';
import { type Usage, checkValues, logOptions, readFlagFile, tunNameProblem, unknownOption, usageFor } from '../../common/args.js';
import type { Level, LogFormat } from '../../common/log.js';

export const PROGRAM = 'simplevpn-client';

export const HELP = `Usage: simplevpn-client -s SERVER [options]

Connects this machine to a simplevpn server: creates a tun device, gets an address from
the server (or asks for the one given with -a), configures the device with the netmask,
MTU and routes the server pushes, and keeps the link up, reconnecting when it drops.
Needs root or CAP_NET_ADMIN.

Options:
  -s, --server HOST          the server's host name or address (required)
  -p, --port PORT            the server's TCP port (2002; 2003 with --tls)
  -a, --address ADDR         ask for this VPN address instead of any free one
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

Security:
      --tls                  connect over TLS and verify the server's certificate
      --ca FILE              PEM CA that signed the server's certificate (default: the
                             system's trusted roots)
      --cert FILE            PEM certificate of this client, for mutual TLS
      --key FILE             PEM private key of --cert
      --servername NAME      name the server's certificate must carry (default: -s)
      --id ID                this client's id in the server's auth file
      --secret-file FILE     file holding this client's secret (or set SIMPLEVPN_SECRET);
                             never on the command line, where ps would show it
      --log-format FORMAT    text or json (text)
      --log-level LEVEL      debug, info, warn or error (info)
  -h, --help                 show this help
  -v, --version              show the version

Examples:
  sudo simplevpn-client -s vpn.example.net
  sudo simplevpn-client -s vpn.example.net -a 10.0.3.7
  sudo simplevpn-client -s vpn.example.net --tls --ca ca.pem --id sensor-7 --secret-file secret

Exit status: 0 after SIGINT or SIGTERM, 1 on failure (no tun device or no privilege),
2 on bad usage, 3 when, before the link is first up, the server refuses for a reason
retrying cannot fix (the address asked for with -a is in use or not allowed, the
credentials are wrong) or a setting is wrong (the server's certificate is not trusted or
not for the name dialled: see --ca and --servername; --tls on a plain port, or no --tls on
a TLS port).
`;

const STRINGS = [
  'server',
  'port',
  'address',
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
  'log-format',
  'log-level',
];

export interface ClientSettings {
  /** The server's host name or address, and its port. */
  host: string;
  port: number;
  /** HOST:PORT as dialled, for log lines ([HOST]:PORT for an IPv6 address). */
  server: string;
  /** The address to ask for (-a), or undefined for any free one. */
  address?: string;
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
  /** TLS, with the files' contents; null for plain TCP. */
  tls: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } | null;
  credentials?: { id: string; secret: string };
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
    boolean: ['help', 'version', 'seed', 'tls'],
    string: [...STRINGS], // a copy: mri appends the aliases to it
  });
  const bad = unknownOption(args, [...STRINGS, 'help', 'version', 'seed', 'tls', 's', 'p', 'a', 'h', 'v'], argv);
  if (bad) usage(`unknown option ${bad}`);
  if (args.help) return 'help';
  if (args.version) return 'version';
  if (args._.length) usage(`unexpected argument "${args._[0]}"`);
  checkValues(usage, args, STRINGS);
  if (!args.server) usage('the server is required: -s HOST');
  const port = Number(args.port ?? (args.tls ? TLS_PORT : PORT));
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`--port must be from 1 to 65535, got "${args.port}"`);
  if (args.address !== undefined && parseIPv4(args.address) <= 0) usage(`--address must be an IPv4 address, got "${args.address}"`);
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
  for (const k of ['ca', 'cert', 'key', 'servername']) if (args[k] !== undefined && !args.tls) usage(`--${k} needs --tls`);
  if (Boolean(args.cert) !== Boolean(args.key)) usage('--cert and --key go together');
  if (args.seed && (args.id || args['secret-file'])) usage('--seed cannot carry credentials: the seed protocol has no room for them');
  let credentials: ClientSettings['credentials'];
  if (args.id !== undefined || args['secret-file'] !== undefined) {
    if (!args.id) usage('--secret-file needs --id');
    const secret = args['secret-file'] !== undefined ? readFlagFile(usage, 'secret-file', args['secret-file']).toString().replace(/\r?\n$/, '') : env.SIMPLEVPN_SECRET;
    if (!secret) usage('--id needs a secret: --secret-file FILE or the SIMPLEVPN_SECRET environment variable');
    if (!/^[\x20-\x7e]{1,255}$/.test(secret)) usage('the secret must be 1 to 255 printable ASCII characters');
    credentials = { id: String(args.id), secret };
  }
  const host = String(args.server);
  const file = (flag: string) => (args[flag] ? readFlagFile(usage, flag, args[flag]) : undefined);
  return {
    host,
    port,
    server: `${host.includes(':') ? `[${host}]` : host}:${port}`,
    address: args.address,
    tun,
    mtu,
    keepalive,
    timeout,
    maxBackoff,
    name: args.name,
    seed: Boolean(args.seed),
    tls: args.tls ? { ca: file('ca'), cert: file('cert'), key: file('key'), servername: args.servername } : null,
    credentials,
    log,
  };
}
