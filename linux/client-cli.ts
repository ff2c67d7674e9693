// simplevpn-client: the reference Linux client. The SDK does the protocol; this file puts
// it on a real tun device and applies what the server pushes to the interface.
// Exit codes: 0 stopped by SIGINT or SIGTERM, 1 failure (no tun, no privilege),
// 2 bad usage, 3 before the link was ever up, a refusal or a setting that retrying cannot
// fix: the static address or the credentials refused, the server's certificate not
// trusted or not for the name dialled, TLS on a plain port or plain TCP on a TLS port.

import mri from 'mri';
import { Client, type StateInfo } from '../client-sdk/src/client.js';
import { parseIPv4, REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, REFUSE_OUTSIDE, type Tlv, credentials, PORT, TLS_PORT, LARGE_MTU, MIN_MTU, MAX_FRAME } from '../protocol/index.js';
import type { Failure } from '../client-sdk/src/types.js';
import { nodeClock } from '../client-sdk/node/clock.js';
import { tcpConnect } from '../client-sdk/node/tcp.js';
import { tlsConnect } from '../client-sdk/node/tls.js';
import { readFileSync } from 'node:fs';
import { createLogger, type Level, type LogFormat } from '../common/log.js';
import { tierUpSooner } from '../common/tiering.js';
import { unknownOption } from '../common/args.js';
import { disableIpv6, openTun, type TunDevice } from './tun.js';

const VERSION = '0.1.0';

/**
 * A batch read from the tun lies back to back in one buffer: each run of adjacent packets
 * goes out as one write, without a copy.
 */
function sendBatch(client: Client, packets: Uint8Array[], count: number): void {
  let i = 0;
  while (i < count) {
    const first = packets[i];
    let end = first.byteOffset + first.length;
    let j = i + 1;
    while (j < count && packets[j].buffer === first.buffer && packets[j].byteOffset === end) end += packets[j++].length;
    client.send(j === i + 1 ? first : new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset));
    i = j;
  }
}

const HELP = `Usage: simplevpn-client -s SERVER [options]

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

// Refusals that another attempt with the same settings cannot overcome.
const FINAL_REFUSALS = new Set([REFUSE_IN_USE, REFUSE_OUTSIDE, REFUSE_NOT_ALLOWED, REFUSE_AUTH_REQUIRED, REFUSE_AUTH_FAILED]);

/**
 * The line to log and exit 3 with when `s` (a 'down' before the link was ever up) cannot
 * be fixed by retrying, or null. `server` is HOST:PORT as dialled.
 */
function finalDown(s: StateInfo, args: Record<string, any>, server: string): { event: string; fields: Record<string, string | undefined> } | null {
  const f: Failure | undefined = s.failure;
  if (s.code && FINAL_REFUSALS.has(s.code) && (s.code !== REFUSE_IN_USE || args.address))
    return {
      event: s.code === REFUSE_AUTH_FAILED || s.code === REFUSE_AUTH_REQUIRED ? 'auth_refused' : 'address_refused',
      fields: { address: args.address, id: args.id, reason: s.reason },
    };
  if (f?.kind === 'certificate')
    return {
      event: 'tls_certificate_rejected',
      fields: {
        server,
        reason: s.reason,
        fix: `give --ca FILE with the CA that signed the server's certificate (the certificate itself if it is self-signed)${args.ca ? '' : "; without --ca only the system's trusted roots are accepted"}`,
      },
    };
  if (f?.kind === 'certificate_name') {
    const names = f.names?.length ? f.names.join(', ') : '';
    return {
      event: 'tls_certificate_rejected',
      fields: {
        server,
        reason: s.reason,
        fix: `give --servername NAME with a name the server's certificate carries${names ? ` (${names})` : ''}, or connect with -s to that name`,
      },
    };
  }
  if (f?.kind === 'not_tls')
    return { event: 'tls_mismatch', fields: { server, reason: `the server at ${server} does not speak TLS on this port: drop --tls or use its TLS port (${TLS_PORT} by default)`, detail: s.reason } };
  if (f?.kind === 'expects_tls')
    return { event: 'tls_mismatch', fields: { server, reason: `the server at ${server} expects TLS on this port: use --tls`, detail: 'it answered with a TLS alert' } };
  return null;
}

function readFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err: any) {
    usage(`cannot read --${flag} ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}

function usage(msg: string): never {
  process.stderr.write(`simplevpn-client: ${msg}\nTry 'simplevpn-client --help' for the options.\n`);
  process.exit(2);
}

function seconds(name: string, v: unknown, dflt: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) usage(`--${name} must be a number of seconds from ${min} to ${max}, got "${v}"`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const args = mri(argv, {
    alias: { s: 'server', p: 'port', a: 'address', h: 'help', v: 'version' },
    boolean: ['help', 'version', 'seed', 'tls'],
    string: STRINGS,
  });
  const bad = unknownOption(args, [...STRINGS, 'help', 'version', 'seed', 'tls', 's', 'p', 'a', 'h', 'v'], argv);
  if (bad) usage(`unknown option ${bad}`);
  if (args.help) return void process.stdout.write(HELP);
  if (args.version) return void process.stdout.write(VERSION + '\n');
  if (args._.length) usage(`unexpected argument "${args._[0]}"`);
  for (const k of STRINGS) {
    if (args[k] === '') usage(`--${k} needs a value`);
    if (Array.isArray(args[k])) usage(`--${k} given more than once`);
  }
  if (!args.server) usage('the server is required: -s HOST');
  const port = Number(args.port ?? (args.tls ? TLS_PORT : PORT));
  if (!Number.isInteger(port) || port < 1 || port > 65535) usage(`--port must be from 1 to 65535, got "${args.port}"`);
  if (args.address !== undefined && parseIPv4(args.address) <= 0) usage(`--address must be an IPv4 address, got "${args.address}"`);
  const format = String(args['log-format'] ?? 'text');
  const level = String(args['log-level'] ?? 'info');
  if (format !== 'text' && format !== 'json') usage(`--log-format must be text or json, got "${format}"`);
  if (!['debug', 'info', 'warn', 'error'].includes(level)) usage(`--log-level must be debug, info, warn or error, got "${level}"`);
  const tunName = String(args.tun ?? 'svpn%d');
  if (tunName.length > 15 || /[\s/:]/.test(tunName)) usage(`--tun must be a device name of 1 to 15 characters without spaces, '/' or ':', got "${tunName}"`);
  const keepalive = seconds('keepalive', args.keepalive, undefined, 1, 65535);
  const timeout = seconds('timeout', args.timeout, undefined, 1, 3600);
  const maxBackoff = seconds('max-backoff', args['max-backoff'], undefined, 1, 86400);
  const mtu = Number(args.mtu ?? LARGE_MTU);
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_FRAME) usage(`--mtu must be a whole number from ${MIN_MTU} to ${MAX_FRAME}, got "${args.mtu}"`);
  const log = createLogger({ format: format as LogFormat, level: level as Level });
  for (const k of ['ca', 'cert', 'key', 'servername']) if (args[k] !== undefined && !args.tls) usage(`--${k} needs --tls`);
  if (Boolean(args.cert) !== Boolean(args.key)) usage('--cert and --key go together');
  if (args.seed && (args.id || args['secret-file'])) usage('--seed cannot carry credentials: the seed protocol has no room for them');
  let requestTlvs: (() => Tlv[]) | undefined;
  if (args.id !== undefined || args['secret-file'] !== undefined) {
    if (!args.id) usage('--secret-file needs --id');
    const secret = args['secret-file'] !== undefined ? readFile('secret-file', args['secret-file']).toString().replace(/\r?\n$/, '') : process.env.SIMPLEVPN_SECRET;
    if (!secret) usage('--id needs a secret: --secret-file FILE or the SIMPLEVPN_SECRET environment variable');
    if (!/^[\x20-\x7e]{1,255}$/.test(secret)) usage('the secret must be 1 to 255 printable ASCII characters');
    requestTlvs = () => credentials(String(args.id), secret);
  }
  const host = String(args.server);
  const server = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const connect = args.tls
    ? tlsConnect({
        host,
        port,
        ca: args.ca ? readFile('ca', args.ca) : undefined,
        cert: args.cert ? readFile('cert', args.cert) : undefined,
        key: args.key ? readFile('key', args.key) : undefined,
        servername: args.servername,
      })
    : tcpConnect({ host, port });

  tierUpSooner();
  let client: Client | null = null;
  let tun: TunDevice;
  try {
    tun = openTun({
      name: tunName,
      onPackets: (packets, count) => sendBatch(client!, packets, count),
      onError: (err) => log.log('error', 'tun_error', { error: err.message }),
    });
  } catch (err: any) {
    log.log('error', 'tun_failed', { error: err.message, code: err.code });
    process.exit(1);
  }
  disableIpv6(tun.name);
  log.log('info', 'tun_created', { name: tun.name });

  // What is configured on the tun now, so a new assignment changes only what differs.
  let applied: { address: string; prefix: number; mtu: number } | null = null;
  let routes = new Set<string>();
  let everReady = false;
  let tunDrops = 0;

  const configure = (s: StateInfo) => {
    const want = { address: s.address!, prefix: s.prefix!, mtu: s.mtu! };
    if (!applied || applied.address !== want.address || applied.prefix !== want.prefix || applied.mtu !== want.mtu) {
      tun.configure(want);
      log.log('info', 'tun_configured', { name: tun.name, address: want.address, prefix: want.prefix, mtu: want.mtu });
      applied = want;
    }
    const next = new Set((s.routes ?? []).map((r) => `${r.network}/${r.prefix}`));
    for (const r of routes) {
      if (next.has(r)) continue;
      const [n, p] = r.split('/');
      try {
        tun.deleteRoute(n, +p);
      } catch (err: any) {
        log.log('warn', 'route_delete_failed', { route: r, error: err.message });
      }
    }
    for (const r of next) {
      if (routes.has(r)) continue;
      const [n, p] = r.split('/');
      try {
        tun.addRoute(n, +p);
        log.log('info', 'route_added', { route: r, dev: tun.name });
      } catch (err: any) {
        log.log('warn', 'route_add_failed', { route: r, error: err.message });
        next.delete(r);
      }
    }
    routes = next;
  };

  client = new Client({
    connect,
    requestTlvs,
    tun: {
      write: (buf, offset, length) => {
        // false: the device is full or the kernel refused that packet (linux/tun.ts counts
        // which). A throw is the device itself failing (deleted under us): nothing more can
        // be delivered, so the client stops and says why.
        try {
          if (!tun.write(buf, offset, length)) tunDrops++;
        } catch (err: any) {
          log.log('error', 'tun_failed', { name: tun.name, error: err.message, code: err.code });
          shutdown(1);
        }
      },
    },
    clock: nodeClock,
    address: args.address,
    keepalive,
    timeout,
    maxBackoff,
    seed: Boolean(args.seed),
    name: args.name,
    mtu,
    onState: (s) => {
      if (s.state === 'connecting') log.log('info', 'connecting', { server });
      else if (s.state === 'ready') {
        try {
          configure(s);
        } catch (err: any) {
          log.log('error', 'configure_failed', { error: err.message, code: err.code });
          return shutdown(1);
        }
        everReady = true;
        log.log('info', 'ready', {
          address: s.address,
          prefix: s.prefix,
          gateway: s.gateway,
          mtu: s.mtu,
          keepalive: s.keepalive,
          routes: (s.routes ?? []).map((r) => `${r.network}/${r.prefix}`).join(',') || undefined,
          server: s.server,
        });
      } else if (s.state === 'down') {
        // Final: the refusal (or the setting to fix) is the last word, with no retry announced.
        const final = everReady ? null : finalDown(s, args, server);
        if (final) {
          log.log('error', final.event, final.fields);
          return shutdown(3);
        }
        log.log('warn', 'down', { reason: s.reason, code: s.code || undefined, retry_in_s: (s.retryIn ?? 0) / 1000 });
      }
    },
  });

  let stopped = false;
  function shutdown(code: number, signal?: string): void {
    if (stopped) return;
    stopped = true;
    if (signal) log.log('info', 'stopping', { signal });
    client?.close();
    tun.close();
    const st = client!.stats;
    log.log('info', 'stopped', { tx_packets: st.txPackets, rx_packets: st.rxPackets, dropped: st.dropped, tun_dropped: tunDrops, connects: st.connects });
    process.exitCode = code;
    // Nothing else should be pending; make sure a stuck socket cannot keep us alive.
    setTimeout(() => process.exit(code), 1000).unref();
  }
  process.on('SIGINT', () => shutdown(0, 'SIGINT'));
  process.on('SIGTERM', () => shutdown(0, 'SIGTERM'));
  client.start();
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`simplevpn-client: ${err?.stack ?? err}\n`);
  process.exit(1);
});
