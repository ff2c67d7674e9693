// simplevpn-server: the operator's command line.
// Exit codes: 0 stopped by SIGINT or SIGTERM, 1 could not start or failed, 2 bad usage.

import mri from 'mri';
import { hashSecret, newDeviceKey } from './control/auth.js';
import { ConfigError, type ServerOptions } from './config/config.js';
import { createLogger } from '../../common/log.js';
import { openServerTun } from '../../linux/server-tun.js';
import { openServerHub } from '../../linux/server-hub.js';
import { openKernelRoutes } from '../../linux/kernel-routes.js';
import { createServer } from './server.js';
import { tierUpSooner } from '../../common/tiering.js';
import { checkValues, logOptions, readFlagFile, unknownOption, usageFor } from '../../common/args.js';
import { VERSION } from '../../common/version.js';

const HELP = `Usage: simplevpn-server [options]

Runs the simplevpn server: clients connect over TCP, get an address on the VPN subnet and
exchange raw IPv4 packets. Packets for another client are switched to it; the rest go to
the server's tun device for Linux to route (needs root or CAP_NET_ADMIN and the native
binding; without them the server still switches client-to-client traffic).

Options:
  -p, --port PORT            TCP port to listen on (2002)
      --host ADDR            address to listen on, repeatable (every IPv4 and IPv6 address)
      --subnet CIDR          VPN subnet, /8 to /30 (10.0.0.0/16)
      --address ADDR         the server's own VPN address (the subnet's first host)
      --tun NAME             name of the server's tun device (svpn%d: the kernel numbers it)
      --no-tun               run without a tun device: client-to-client traffic only
      --mtu BYTES            largest tunnel MTU a client is granted, and the MTU of the
                             server's tun (65000); a client that does not ask gets 1500
      --idle-timeout SEC     drop a client that has sent nothing for this long (60)
      --keepalive SEC        keepalive interval pushed to clients (15)
      --handshake-timeout SEC  close a connection that sends no address request (10)
      --max-clients N        clients holding an address at once (the subnet's size)
      --max-frame BYTES      largest frame accepted from a client (65535)
      --send-queue BYTES     bytes queued towards one client before dropping (262144)
      --route CIDR           push a route through the tunnel to clients, repeatable
      --subnet6 PREFIX       IPv6 inside the tunnel: a /64 (ULA such as fd00:5:6::/64, or
                             routed); a client that asks gets PREFIX + its IPv4 address as
                             its IPv6 address, the server PREFIX + its own (off; not with --etcd)
      --route6 CIDR          push an IPv6 route to clients holding an IPv6 address, repeatable
      --status HOST:PORT     serve /metrics, /clients and /cluster over HTTP (off; PORT
                             alone: loopback)

Leases (who holds which address; in memory unless one of these is given):
      --state FILE           keep them in FILE: after a restart or a crash each client gets
                             its address back (it is kept for it for --idle-timeout)
      --etcd URL[,URL...]    share them with other servers through etcd (a cluster): a client
                             keeps its address on any of them; each server routes the other
                             servers' clients' addresses via their --cluster-advertise
      --etcd-ca FILE         PEM CA that etcd's certificate must be signed by (https URLs)
      --etcd-cert FILE       PEM client certificate for etcd
      --etcd-key FILE        PEM private key of --etcd-cert
      --etcd-prefix PREFIX   what this cluster's keys in etcd start with (/simplevpn/)
      --etcd-ttl SEC         this server's lease in etcd: when it stops renewing it, its
                             clients' addresses are free this long after (10)
      --cluster-advertise ADDR  this server's address on the network between the servers,
                             the next hop to its clients (the local address towards etcd)
      --cluster-id NAME      this server's name in the cluster (HOSTNAME@ADVERTISE)

Security:
      --tls-cert FILE        PEM certificate: run a TLS listener beside the plain one
      --tls-key FILE         PEM private key of --tls-cert
      --tls-ca FILE          PEM CA: TLS clients must present a certificate it signed
      --cert-id MODE         with --auth and --tls-ca: cn, a client certificate's subject
                             CN is its auth id and authenticates it without a secret, and
                             a request naming another id is refused; off, certificates only
                             admit to the TLS listener (cn)
      --tls-port PORT        port of the TLS listener (2003)
      --no-plain             no plain TCP listener (seed devices cannot connect)
      --auth FILE            require credentials from every client, as listed in FILE
                             (JSON; SIGHUP re-reads it); see SECURITY.md
      --hash-secret          read a secret on stdin, print its hash for the auth file, exit
      --new-device-key       print a new random device key and its hash for the auth file
                             (JSON: "secret" for the file, "key" for the device), exit
      --auth-bearer MODE     where a client may present its secret itself instead of
                             answering a challenge: any, tls (TLS connections only) or off
                             (any)
      --max-per-source N     connections one source address may hold (1024; 0: no limit)
      --conn-rate N          new connections per second per source address (50; 0: no limit)
      --auth-rate N          credential checks per second, server-wide, shared fairly
                             among source addresses (50)
      --frame-timeout SEC    close a connection whose unfinished frame takes longer than
                             this to arrive whole (the handshake timeout)
      --frame-memory BYTES   bytes of unfinished frames held across all connections; over
                             it, connections holding more than their share are closed (268435456)

WebSocket, on the same ports (browsers; networks that let only web traffic out):
      --ws-path PATH         the path WebSocket clients connect to (/); other paths get 404
      --ws-origin ORIGIN     browser pages allowed to connect, as https://app.example.net,
                             repeatable (any); a client that sends no Origin is allowed
      --trust-proxy CIDR     take the client's address from X-Forwarded-For or Forwarded on
                             connections from CIDR (a reverse proxy), repeatable (none)
      --no-ws                no WebSocket: the ports take the raw stream only

      --no-warm-up           start listening at once, without first running a few thousand
                             packets through throw-away servers on loopback (about 0.5 s
                             of CPU) so that the first clients meet optimised code

      --log-format FORMAT    text or json (text)
      --log-level LEVEL      debug, info, warn or error (info)
      --config FILE          JSON file of these options (camelCase or as spelled here);
                             flags given on the command line override it
  -h, --help                 show this help
  -v, --version              show the version

Examples:
  sudo simplevpn-server
  sudo simplevpn-server --subnet 10.8.0.0/24 --route 192.168.50.0/24 --status 9100
  simplevpn-server --no-tun

Signals: SIGINT and SIGTERM stop the server; SIGHUP re-reads --auth and the TLS files.
Exit status: 0 after SIGINT or SIGTERM, 1 when the server cannot start, 2 on bad usage
(including an unusable --config, --auth or TLS file).
`;

const STRINGS = [
  'port',
  'host',
  'subnet',
  'address',
  'tun',
  'mtu',
  'idle-timeout',
  'keepalive',
  'handshake-timeout',
  'max-clients',
  'max-frame',
  'send-queue',
  'route',
  'subnet6',
  'route6',
  'status',
  'tls-cert',
  'tls-key',
  'tls-ca',
  'tls-port',
  'auth',
  'max-per-source',
  'conn-rate',
  'auth-rate',
  'auth-bearer',
  'cert-id',
  'frame-timeout',
  'frame-memory',
  'ws-path',
  'ws-origin',
  'trust-proxy',
  'state',
  'etcd',
  'etcd-ca',
  'etcd-cert',
  'etcd-key',
  'etcd-prefix',
  'etcd-ttl',
  'cluster-advertise',
  'cluster-id',
  'log-format',
  'log-level',
  'config',
];

const usage = usageFor('simplevpn-server');
/** A second SIGINT or SIGTERM this long after the first forces the exit. */
const FORCE_AFTER_MS = 1000;

const camel = (k: string) => k.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
const list = (v: unknown): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v.map(String) : [String(v)]);

function readConfigFile(path: string): Record<string, unknown> {
  const text = readFlagFile(usage, 'config', path).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err: any) {
    usage(`--config ${path} is not valid JSON: ${err.message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) usage(`--config ${path} must hold a JSON object`);
  const out: Record<string, unknown> = {};
  const known = new Set(STRINGS.filter((k) => k !== 'config').map(camel));
  known.add('routes');
  known.add('routes6');
  known.add('plain');
  known.add('ws');
  known.add('warmUp');
  for (const [k, v] of Object.entries(json as object)) {
    const key = camel(k);
    if (!known.has(key)) usage(`--config ${path}: unknown option "${k}"`);
    out[key === 'route' ? 'routes' : key === 'route6' ? 'routes6' : key] = v;
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const args = mri(argv, {
    alias: { p: 'port', h: 'help', v: 'version' },
    boolean: ['help', 'version', 'hash-secret', 'new-device-key'],
    string: STRINGS,
  });
  const bad = unknownOption(args, [...STRINGS, 'help', 'version', 'hash-secret', 'new-device-key', 'plain', 'ws', 'warm-up', 'p', 'h', 'v'], argv);
  if (bad) usage(`unknown option ${bad}`);
  if (args.help) {
    process.stdout.write(HELP);
    return;
  }
  if (args.version) {
    process.stdout.write(VERSION + '\n');
    return;
  }
  if (args._.length) usage(`unexpected argument "${args._[0]}"`);
  if (args['hash-secret']) return printHash();
  if (args['new-device-key']) return void process.stdout.write(JSON.stringify(newDeviceKey()) + '\n');
  if (args.plain === true) usage('--plain is the default; use --no-plain to turn the plain listener off');
  checkValues(usage, args, STRINGS, ['host', 'route', 'route6', 'ws-origin', 'trust-proxy']);

  const file = args.config ? readConfigFile(String(args.config)) : {};
  const fromFlags: Record<string, unknown> = {};
  for (const k of STRINGS) {
    if (k === 'config' || k === 'log-format' || k === 'log-level' || args[k] === undefined) continue;
    if (k === 'route') fromFlags.routes = list(args.route);
    else if (k === 'route6') fromFlags.routes6 = list(args.route6);
    else if (k === 'host') fromFlags.host = list(args.host);
    else fromFlags[camel(k)] = args[k];
  }
  if (args.plain === false) fromFlags.plain = false;
  if (args.ws === true) usage('--ws is the default; use --no-ws to turn WebSocket off');
  if (args.ws === false) fromFlags.ws = false;
  if (args['warm-up'] === true) usage('--warm-up is the default; use --no-warm-up to start without it');
  if (args['warm-up'] === false) fromFlags.warmUp = false;
  const merged = { warmUp: true, ...file, ...fromFlags } as Record<string, unknown>;
  if (merged.tun === 'false' || merged.tun === false) merged.tun = false;

  const logging = logOptions(usage, String(args['log-format'] ?? merged.logFormat ?? 'text'), String(args['log-level'] ?? merged.logLevel ?? 'info'));
  delete merged.logFormat;
  delete merged.logLevel;
  const logger = createLogger(logging);

  tierUpSooner();
  let server;
  try {
    server = createServer({ ...(merged as ServerOptions), logger, openTun: openServerTun, openRoutes: openKernelRoutes, openHub: openServerHub });
  } catch (err) {
    if (err instanceof ConfigError) usage(err.message);
    throw err;
  }
  // Every signal handler is in place before listen() logs `listening`: a supervisor that
  // stops the server as soon as it sees that line must get a clean exit, never a kill.
  // Until the server is up a SIGHUP has nothing to reload and must not end the process; a
  // SIGINT or SIGTERM during start-up stops it as soon as listen() has settled.
  let ready = false;
  let stopping = false;
  let starting = true;
  let stopAfterStart: string | null = null;
  let stoppingAt = 0;
  const stop = (signal: string) => {
    if (starting && stopAfterStart === null) {
      stopAfterStart = signal;
      return;
    }
    if (stopping) {
      // Ctrl-C under sudo arrives twice at once: from the terminal to the whole process
      // group, and relayed by sudo. Only a signal a moment later is someone insisting.
      if (Date.now() - stoppingAt < FORCE_AFTER_MS) return;
      logger.log('warn', 'forced_exit', { signal });
      process.exit(1);
    }
    stopping = true;
    stoppingAt = Date.now();
    logger.log('info', 'stopping', { signal });
    const force = setTimeout(() => {
      logger.log('error', 'stop_timeout', { detail: 'sessions did not close within 5 s' });
      process.exit(1);
    }, 5000);
    force.unref();
    server.close().then(() => process.exit(0));
  };
  process.on('SIGHUP', () => ready && void server.reload().catch(() => {}));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  try {
    await server.listen();
    ready = true;
  } catch (err: any) {
    if (err instanceof ConfigError) {
      await server.close();
      usage(err.message);
    }
    const why =
      err.code === 'EADDRINUSE'
        ? `port ${server.cfg.port} is already in use`
        : err.code === 'EACCES'
          ? `not allowed to listen on port ${server.cfg.port}`
          : err.message;
    logger.log('error', 'start_failed', { error: why, code: err.code });
    await server.close();
    process.exit(1);
  }
  starting = false;
  if (stopAfterStart) stop(stopAfterStart);
}

/** --hash-secret: one line from stdin in, its auth-file hash out. */
async function printHash(): Promise<void> {
  let input = '';
  for await (const chunk of process.stdin) input += chunk;
  const secret = input.replace(/\r?\n$/, '');
  if (!/^[\x20-\x7e]*$/.test(secret)) usage('--hash-secret: the secret must be printable ASCII, as clients send it');
  if (secret.length < 8) usage('--hash-secret: the secret on stdin must be at least 8 characters (16 random bytes, hex, are better)');
  if (secret.length > 255) usage('--hash-secret: the secret must be at most 255 characters');
  process.stdout.write((await hashSecret(secret)) + '\n');
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`simplevpn-server: ${err?.stack ?? err}\n`);
  process.exit(1);
});
