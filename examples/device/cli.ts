// Command-line handling shared by the two device runners (node.ts and ../quickjs/run-device.ts):
// the same flags, the same JSON log lines on stdout, the same exit codes. Node only; the
// device itself never sees this file.

import { parseArgs } from 'node:util';
import { parseIPv4 } from '../../client-sdk/src/index.js';
import type { DeviceConfig } from './device.js';

export interface RunnerOptions {
  server: string;
  port: number;
  config: DeviceConfig;
}

const DEVICE_HELP = `Options:
      --server HOST          the simplevpn server (required)
      --port PORT            its TCP port (2002)
      --collector ADDR:PORT  where readings go, an address on the VPN (required)
      --address ADDR         ask for this VPN address instead of any free one
      --ipv6                 ask for an IPv6 address too, and answer ping -6 on it
      --id NAME              the device's name in readings and in the server log (sensor-1)
      --interval SEC         seconds between readings (10)
      --keepalive SEC        seconds of silence before a keepalive, unless the server pushes one (15)
      --timeout SEC          wait for a connection, a reply or a keepalive answer (10)
      --min-backoff SEC      first reconnect delay (1)
      --max-backoff SEC      longest reconnect delay (60)`;

const DEVICE_OPTIONS = {
  server: { type: 'string' },
  port: { type: 'string' },
  collector: { type: 'string' },
  address: { type: 'string' },
  ipv6: { type: 'boolean' },
  id: { type: 'string' },
  interval: { type: 'string' },
  keepalive: { type: 'string' },
  timeout: { type: 'string' },
  'min-backoff': { type: 'string' },
  'max-backoff': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Extra = Record<string, { type: 'string' | 'boolean' }>;

/** Prints one JSON log line on stdout. */
export function logLine(event: string, fields: Record<string, unknown> = {}, level = event === 'down' ? 'warn' : 'info'): void {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }) + '\n');
}

export function usageError(program: string, msg: string): never {
  process.stderr.write(`${program}: ${msg}\nTry '${program} --help' for the options.\n`);
  process.exit(2);
}

/**
 * Parses the device flags plus `extra` ones. Prints help and exits 0 on --help, exits 2 on
 * bad usage. Returns the runner options and the raw values of the extra flags.
 */
export function parseDeviceArgs(program: string, summary: string, argv: string[], extra: Extra = {}, extraHelp = ''): { opts: RunnerOptions; values: Record<string, string | boolean | undefined> } {
  let values: Record<string, string | boolean | undefined>;
  try {
    const r = parseArgs({ args: argv, options: { ...DEVICE_OPTIONS, ...extra }, strict: true, allowPositionals: false });
    values = r.values as typeof values;
  } catch (e: any) {
    usageError(program, e.message);
  }
  if (values.help) {
    process.stdout.write(`Usage: ${program} --server HOST --collector ADDR:PORT [options]\n\n${summary}\n\n${DEVICE_HELP}\n${extraHelp}  -h, --help                 show this help\n\nExit status: 0 after SIGINT or SIGTERM, 1 on failure, 2 on bad usage.\n`);
    process.exit(0);
  }
  const str = (k: string) => values[k] as string | undefined;
  const num = (k: string, min: number, max: number): number | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) usageError(program, `--${k} must be a number from ${min} to ${max}, got "${v}"`);
    return n;
  };
  const server = str('server');
  if (!server) usageError(program, 'the server is required: --server HOST');
  const collector = str('collector');
  if (!collector) usageError(program, 'the collector is required: --collector ADDR:PORT');
  const m = /^(\d+\.\d+\.\d+\.\d+):(\d+)$/.exec(collector);
  if (!m || parseIPv4(m[1]) <= 0 || +m[2] < 1 || +m[2] > 65535) usageError(program, `--collector must be ADDRESS:PORT, got "${collector}"`);
  const address = str('address');
  if (address !== undefined && parseIPv4(address) <= 0) usageError(program, `--address must be an IPv4 address, got "${address}"`);
  const port = num('port', 1, 65535) ?? 2002;
  if (!Number.isInteger(port)) usageError(program, `--port must be an integer, got "${str('port')}"`);
  const minBackoff = num('min-backoff', 0.01, 86400);
  const maxBackoff = num('max-backoff', 0.01, 86400);
  if (minBackoff !== undefined && maxBackoff !== undefined && minBackoff > maxBackoff) usageError(program, '--min-backoff must not exceed --max-backoff');
  return {
    opts: {
      server,
      port,
      config: {
        id: str('id') ?? 'sensor-1',
        collector,
        address,
        ipv6: values.ipv6 === true || undefined,
        interval: num('interval', 0.05, 86400),
        keepalive: num('keepalive', 1, 65535),
        timeout: num('timeout', 0.1, 3600),
        minBackoff,
        maxBackoff,
      },
    },
    values,
  };
}
