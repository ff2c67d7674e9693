// simplevpn-client's flags read into its settings (linux/client/args.ts), with bad usage
// caught as the message it would print. The CLI as a process: test/integration/linux.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClientSettings, parseClientArgs } from '../../../../linux/client/args.js';

const usage = (msg: string): never => {
  throw new Error(msg);
};
const parse = (argv: string[], env: Record<string, string> = {}) => parseClientArgs(argv, env, usage) as ClientSettings;
function refused(argv: string[], env: Record<string, string> = {}): string | null {
  try {
    parseClientArgs(argv, env, usage);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'svpn-client-args-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};

test('defaults: port 2002, tun svpn%d, MTU 65000, plain TCP, text logs at info, SDK timers', () => {
  assert.equal(parse(['-s', 'vpn.example.net']), {
    host: 'vpn.example.net',
    port: 2002,
    server: 'vpn.example.net:2002',
    url: undefined,
    proxy: undefined,
    servers: [{ host: 'vpn.example.net', port: 2002, server: 'vpn.example.net:2002', url: undefined, proxy: undefined }],
    transport: 'tcp',
    address: undefined,
    ipv6: new Uint8Array(0), // asks for any IPv6 address: servers without --subnet6 ignore it
    tun: 'svpn%d',
    mtu: 65000,
    keepalive: undefined,
    timeout: undefined,
    maxBackoff: undefined,
    name: undefined,
    seed: false,
    offload: false,
    tls: null,
    credentials: undefined,
    log: { format: 'text', level: 'info' },
  });
});

test('--offload asks for a tun with offloads', () => {
  assert.is(parse(['-s', 'h', '--offload']).offload, true);
});

test('transports: --transport, the URL form of -s, default ports, --path', () => {
  const ws = parse(['-s', 'wss://vpn.example.net/vpn']);
  assert.equal([ws.transport, ws.host, ws.port, ws.url, ws.tls !== null], ['wss', 'vpn.example.net', 443, 'wss://vpn.example.net:443/vpn', true]);
  const w = parse(['-s', 'ws://10.1.2.3:2002']);
  assert.equal([w.transport, w.port, w.url, w.tls], ['ws', 2002, 'ws://10.1.2.3:2002/', null]);
  assert.equal([parse(['-s', 'h', '--transport', 'ws']).port, parse(['-s', 'h', '--transport', 'wss', '--path', '/x']).url], [80, 'wss://h:443/x']);
  assert.equal([parse(['-s', 'tls://h']).port, parse(['-s', 'tcp://h']).port, parse(['-s', 'h', '--transport', 'tls']).port], [2003, 2002, 2003]);
  assert.is(parse(['-s', 'wss://h/', '--ca', file('ca2.pem', 'C')]).tls?.ca?.toString(), 'C', '--ca applies to wss');
  assert.is(refused(['-s', 'h', '--transport', 'udp']), '--transport must be tcp, tls, ws or wss, got "udp"');
  assert.is(refused(['-s', 'ftp://h']), '-s ftp://h: the scheme must be tcp://, tls://, ws:// or wss://');
  assert.is(refused(['-s', 'ws://h', '--tls']), '-s ws://h and --tls disagree');
  assert.is(refused(['-s', 'tcp://h/x']), '-s tcp://h/x: a path is for ws:// and wss:// only');
  assert.is(refused(['-s', 'h', '--path', '/x']), '--path is for --transport ws or wss');
});

test('proxies: --proxy, https_proxy for tls and wss, http_proxy for tcp and ws, NO_PROXY, --no-proxy', () => {
  assert.is(parse(['-s', 'h', '--proxy', 'http://u:p@px:3128']).proxy, 'http://u:p@px:3128');
  assert.is(parse(['-s', 'h'], { http_proxy: 'http://px:8080', https_proxy: 'http://sx:1' }).proxy, 'http://px:8080');
  assert.is(parse(['-s', 'wss://h/'], { http_proxy: 'http://px:8080', HTTPS_PROXY: 'sx:1' }).proxy, 'http://sx:1');
  assert.is(parse(['-s', 'vpn.example.net', '--tls'], { https_proxy: 'http://sx:1', NO_PROXY: 'localhost,.example.net' }).proxy, undefined);
  assert.is(parse(['-s', 'h'], { http_proxy: 'http://px:8080' }).proxy, 'http://px:8080');
  assert.is(parse(['-s', 'h', '--no-proxy'], { http_proxy: 'http://px:8080' }).proxy, undefined);
  assert.match(String(refused(['-s', 'h', '--proxy', 'socks5://px:1080'])), /^--proxy: the proxy must be an http:\/\/ URL/);
});

test('several servers: -s a,b,c, in order, each with its port, URL and proxy; the first is the settings\' own; one scheme for all', () => {
  const o = parse(['-s', 'a.example.net,10.0.0.2, ::1', '-p', '2012'], { http_proxy: 'http://px:8080', NO_PROXY: '10.0.0.2' });
  assert.equal(
    o.servers.map((e) => [e.server, e.proxy]),
    [
      ['a.example.net:2012', 'http://px:8080'],
      ['10.0.0.2:2012', undefined],
      ['[::1]:2012', 'http://px:8080'],
    ],
  );
  assert.equal([o.host, o.port, o.server], ['a.example.net', 2012, 'a.example.net:2012']);
  const w = parse(['-s', 'wss://a/vpn,wss://b:8443/vpn']);
  assert.equal(
    w.servers.map((e) => e.url),
    ['wss://a:443/vpn', 'wss://b:8443/vpn'],
  );
  assert.equal(parse(['-s', 'tcp://a:2002,tcp://b:2012']).servers.map((e) => e.port), [2002, 2012]);
  assert.is(parse(['-s', 'one']).servers.length, 1);
  assert.is(refused(['-s', 'a,,b']), '-s a,,b: an empty server in the list');
  assert.is(refused(['-s', 'a,']), '-s a,: an empty server in the list');
  assert.is(refused(['-s', 'tcp://a,wss://b']), '-s tcp://a,wss://b: every server in the list must have the same scheme (or none)');
  assert.is(refused(['-s', 'tls://a,b']), '-s tls://a,b: every server in the list must have the same scheme (or none)');
  assert.is(refused(['-s', 'a,ftp://b']), '-s a,ftp://b: every server in the list must have the same scheme (or none)');
});

test('--help and --version are answered before anything is checked', () => {
  assert.is(parseClientArgs(['--help', '--mtu', 'x'], {}, usage), 'help');
  assert.is(parseClientArgs(['-v'], {}, usage), 'version');
});

test('every flag, with TLS files read and an IPv6 server written as [HOST]:PORT', () => {
  const ca = file('ca.pem', 'CA');
  const s = parse(['-s', 'fd00::1', '--tls', '--ca', ca, '--servername', 'vpn', '-a', '10.0.3.7', '--tun', 'vpn0', '--mtu', '1500', '--keepalive', '5', '--timeout', '3', '--max-backoff', '9', '--name', 'n', '--log-format', 'json', '--log-level', 'debug']);
  assert.is(s.port, 2003, 'the TLS port with --tls');
  assert.is(s.server, '[fd00::1]:2003');
  assert.is(s.tls?.ca?.toString(), 'CA');
  assert.is(s.tls?.servername, 'vpn');
  assert.is(s.tls?.cert, undefined);
  assert.equal([s.address, s.tun, s.mtu, s.keepalive, s.timeout, s.maxBackoff, s.name], ['10.0.3.7', 'vpn0', 1500, 5, 3, 9, 'n']);
  assert.equal(s.log, { format: 'json', level: 'debug' });
});

test('credentials: the secret from --secret-file (its last newline dropped) or SIMPLEVPN_SECRET', () => {
  assert.equal(parse(['-s', 'h', '--id', 'sensor-7', '--secret-file', file('secret', 'abc def\r\n')]).credentials, { id: 'sensor-7', secret: 'abc def', bearer: false });
  assert.equal(parse(['-s', 'h', '--id', 'sensor-7'], { SIMPLEVPN_SECRET: 'from-env' }).credentials, { id: 'sensor-7', secret: 'from-env', bearer: false });
  assert.equal(parse(['-s', 'h', '--id', 'sensor-7', '--bearer'], { SIMPLEVPN_SECRET: 'from-env' }).credentials, { id: 'sensor-7', secret: 'from-env', bearer: true });
});

test('credentials: a device key from --device-key-file; an id alone beside a client certificate', () => {
  const key = Buffer.alloc(32, 7);
  const got = parse(['-s', 'h', '--id', 'sensor-7', '--device-key-file', file('key', key.toString('base64url') + '\n')]).credentials!;
  assert.equal([got.id, Buffer.from(got.key!).equals(key), got.secret, got.bearer], ['sensor-7', true, undefined, false]);
  const pem = file('c.pem', 'x');
  assert.equal(parse(['-s', 'h', '--tls', '--cert', pem, '--key', pem, '--id', 'sensor-7']).credentials, { id: 'sensor-7', bearer: false });
});

test('bad usage says what is wrong', () => {
  const cases: Array<[string[], string]> = [
    [['-s', 'h', '--frob'], 'unknown option --frob'],
    [['-s', 'h', 'extra'], 'unexpected argument "extra"'],
    [['-s'], '--server needs a value'],
    [['-s', 'h', '-s', 'i'], '--server given more than once'],
    [[], 'the server is required: -s HOST'],
    [['-s', 'h', '-p', '70000'], '--port must be from 1 to 65535, got "70000"'],
    [['-s', 'h', '-p', '-1'], '--port must be from 1 to 65535, got "-1"'],
    [['-s', 'h', '-a', '10.0.0'], '--address must be an IPv4 address, got "10.0.0"'],
    [['-s', 'h', '--log-format', 'xml'], '--log-format must be text or json, got "xml"'],
    [['-s', 'h', '--tun', 'a/b'], `--tun must be a device name of 1 to 15 characters without spaces, '/' or ':', got "a/b"`],
    [['-s', 'h', '--keepalive', '-1'], '--keepalive must be a number of seconds from 1 to 65535, got "-1"'],
    [['-s', 'h', '--timeout', '-2.5'], '--timeout must be a number of seconds from 1 to 3600, got "-2.5"'],
    [['-s', 'h', '--mtu', '-5'], '--mtu must be a whole number from 576 to 65535, got "-5"'],
    [['-s', 'h', '--ca', 'x'], '--ca needs --tls'],
    [['-s', 'h', '--tls', '--cert', 'x'], '--cert and --key go together'],
    [['-s', 'h', '--seed', '--id', 'x'], '--seed cannot carry credentials: the seed protocol has no room for them'],
    [['-s', 'h', '--secret-file', 'x'], '--secret-file needs --id'],
    [['-s', 'h', '--id', 'x'], '--id needs a secret: --secret-file FILE or the SIMPLEVPN_SECRET environment variable (or a device key: --device-key-file; or a client certificate: --cert)'],
    [['-s', 'h', '--device-key-file', 'x'], '--device-key-file needs --id'],
    [['-s', 'h', '--id', 'x', '--device-key-file', join(dir, 'missing')], `cannot read --device-key-file ${join(dir, 'missing')}: no such file`],
    [['-s', 'h', '--id', 'x', '--secret-file', join(dir, 'missing')], `cannot read --secret-file ${join(dir, 'missing')}: no such file`],
    [['-s', 'h', '--tls', '--ca', join(dir, 'missing.pem')], `cannot read --ca ${join(dir, 'missing.pem')}: no such file`],
  ];
  for (const [argv, msg] of cases) assert.is(refused(argv), msg, argv.join(' '));
  assert.is(refused(['-s', 'h', '--id', 'x'], { SIMPLEVPN_SECRET: 'tab\there' }), 'the secret must be 1 to 255 printable ASCII characters');
  assert.is(refused(['-s', 'h', '--id', 'x', '--device-key-file', file('short', 'abc')]), '--device-key-file must hold the "key" that simplevpn-server --new-device-key printed (43 base64url characters)');
  assert.is(refused(['-s', 'h', '--id', 'x', '--bearer', '--device-key-file', file('k2', 'abc')]), '--device-key-file goes without --secret-file and --bearer: the key answers challenges, and is not the secret');
});

test.run();
