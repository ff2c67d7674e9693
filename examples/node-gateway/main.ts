// The gateway as a program: node dist/js/examples/node-gateway/main.js --server HOST [options]
// Logs one line per event on stdout (JSON lines by default, or text), reconnects with
// backoff on its own, and stops cleanly on SIGINT or SIGTERM.

import { parseArgs } from 'node:util';
import { parseIPv4 } from '../../client-sdk/src/index.js';
import { describeDown } from '../../client-sdk/node/index.js';
import { VpnGateway } from './gateway.js';

const PROGRAM = 'vpn-gateway';
const HELP = `Usage: ${PROGRAM} --server HOST [options]

Puts this Node process on a simplevpn VPN without a tun device or root: it answers ping on
its VPN address and serves UDP echo and a UDP status record (JSON) there.

Options:
      --server HOST          the simplevpn server (required)
      --port PORT            its TCP port (2002)
      --address ADDR         ask for this VPN address instead of any free one
      --name NAME            the gateway's name in the server log and the status (gateway)
      --echo-port PORT       UDP echo service, 0 for none (7)
      --status-port PORT     UDP status service, 0 for none (7070)
      --keepalive SEC        seconds of silence before a keepalive, unless the server pushes one (15)
      --timeout SEC          wait for a connection, a reply or a keepalive answer (10)
      --min-backoff SEC      first reconnect delay (1)
      --max-backoff SEC      longest reconnect delay (60)
      --log-format FORMAT    json or text (json)
  -h, --help                 show this help

Exit status: 0 after SIGINT or SIGTERM, 1 on an unexpected error, 2 on bad usage.
`;

function usage(msg: string): never {
  process.stderr.write(`${PROGRAM}: ${msg}\nTry '${PROGRAM} --help' for the options.\n`);
  process.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    args: process.argv.slice(2),
    strict: true,
    allowPositionals: false,
    options: {
      server: { type: 'string' },
      port: { type: 'string' },
      address: { type: 'string' },
      name: { type: 'string' },
      'echo-port': { type: 'string' },
      'status-port': { type: 'string' },
      keepalive: { type: 'string' },
      timeout: { type: 'string' },
      'min-backoff': { type: 'string' },
      'max-backoff': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (e: any) {
  usage(e.message);
}
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const str = (k: string) => values[k] as string | undefined;
function num(k: string, min: number, max: number, integer = false): number | undefined {
  const v = str(k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) usage(`--${k} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got "${v}"`);
  return n;
}
const server = str('server');
if (!server) usage('the server is required: --server HOST');
const address = str('address');
if (address !== undefined && parseIPv4(address) <= 0) usage(`--address must be an IPv4 address, got "${address}"`);
const format = str('log-format') ?? 'json';
if (format !== 'json' && format !== 'text') usage(`--log-format must be json or text, got "${format}"`);
const echoPort = num('echo-port', 0, 65535, true) ?? 7;
const statusPort = num('status-port', 0, 65535, true) ?? 7070;
if (echoPort && echoPort === statusPort) usage('--echo-port and --status-port must differ');
const minBackoff = num('min-backoff', 0.01, 86400);
const maxBackoff = num('max-backoff', 0.01, 86400);
if (minBackoff !== undefined && maxBackoff !== undefined && minBackoff > maxBackoff) usage('--min-backoff must not exceed --max-backoff');

function log(event: string, fields: Record<string, unknown> = {}, level = 'info'): void {
  const time = new Date().toISOString();
  if (format === 'json') return void process.stdout.write(JSON.stringify({ time, level, event, ...fields }) + '\n');
  let line = `${time} ${level} ${event}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`;
  process.stdout.write(line + '\n');
}

const port = num('port', 1, 65535, true) ?? 2002;
const timeout = num('timeout', 0.1, 3600);
const gw = new VpnGateway({
  host: server,
  port,
  address,
  name: str('name') ?? 'gateway',
  echoPort,
  statusPort,
  keepalive: num('keepalive', 1, 65535),
  timeout,
  minBackoff,
  maxBackoff,
});

gw.on('connecting', ({ attempt }) => log('connecting', { server: `${server}:${port}`, attempt }));
gw.on('ready', (s) =>
  log('ready', { address: s.address, prefix: s.prefix, gateway: s.gateway, mtu: s.mtu, keepalive: s.keepalive, server: s.server, echo_port: echoPort || undefined, status_port: statusPort || undefined }),
);
gw.on('down', (s) => log('down', { reason: s.reason, detail: describeDown(s, timeout), code: s.code || undefined, attempt: s.attempt, retry_in_s: s.retryIn / 1000 }, 'warn'));
gw.on('request', (r) => log('request', r, 'debug'));

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('stopping', { signal });
  // A stuck socket must not keep the process alive.
  setTimeout(() => process.exit(0), 2000).unref();
  await gw.close();
  const st = gw.status();
  delete st.state;
  delete st.address;
  log('stopped', st);
  process.exitCode = 0;
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('uncaughtException', (err) => {
  log('fatal', { error: err.stack ?? String(err) }, 'error');
  process.exit(1);
});
gw.start();
