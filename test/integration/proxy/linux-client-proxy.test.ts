// simplevpn-client through a real HTTP proxy (Debian's tinyproxy, started here with a
// throwaway config): over tcp and over wss to a real simplevpn-server, both clients reaching
// ready and pinging each other across the VPN; and the proxy's refusals (403: a port it does
// not tunnel to; 407: credentials wanted) ending the client with exit 3 and the line that
// says what to fix; a proxy that cannot be reached, retried.
//
// Three namespaces (test/support/lab.ts): a hub with the server (no tun) and the proxy, and
// one client in each spoke. The clients dial 127.0.0.1 through the proxy at the hub's
// address: their own loopback has no server, so a client that comes up came through the proxy.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_BIN, type Host, type Proc, useLab } from '../../support/lab.js';
import { type Pki, makePki } from '../../support/security-kit.js';

function tinyproxyMissing(): string | null {
  try {
    execFileSync('tinyproxy', ['-v'], { stdio: 'ignore', timeout: 5000 });
    return null;
  } catch {
    return 'tinyproxy is not installed (apt-get install tinyproxy)';
  }
}

const FAST = ['--max-backoff', '1', '--timeout', '3'];
const PROXY_PORT = 3128;
const AUTH_PROXY_PORT = 3129;
let hub: Host;
let c1: Host;
let c2: Host;
let pki: Pki;
let dir = '';
let server: Proc;
let plainPort = 0;
let tlsPort = 0;
let hubAddr = ''; // the hub as spoke 1 reaches it
let hubAddr2 = '';

function tinyproxy(name: string, port: number, extra: string[]): Proc {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    [`Port ${port}`, 'Listen 0.0.0.0', 'User nobody', 'Group nogroup', 'Timeout 60', 'MaxClients 20', 'LogLevel Info', `PidFile "${join(dir, name + '.pid')}"`,
      'Allow 127.0.0.1', 'Allow 198.18.0.0/16', `ConnectPort ${plainPort}`, `ConnectPort ${tlsPort}`, ...extra].join('\n') + '\n',
  );
  return hub.spawn(name, ['tinyproxy', '-d', '-c', conf]);
}

async function listening(h: Host, port: number): Promise<void> {
  const end = Date.now() + 10_000;
  for (;;) {
    const r = await h.exec(['ss', '-Hltn', `sport = :${port}`], 5000);
    if (r.stdout.trim()) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const { it } = useLab(
  test,
  async (lab) => {
    pki = makePki(['127.0.0.1'], ['localhost']);
    dir = mkdtempSync(join(tmpdir(), 'svpn-proxy-'));
    [hub, c1, c2] = lab.star('hub', 'c1', 'c2');
    hubAddr = '198.18.1.1';
    hubAddr2 = '198.18.2.1';
    server = hub.server(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--tls-port', '0', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key]);
    const l = await server.waitFor('listening', () => true, 10_000);
    const port = (s: unknown) => Number(/127\.0\.0\.1:(\d+)/.exec(String(s))?.[1]);
    plainPort = port(l.addresses);
    tlsPort = port(l.tls_addresses);
    tinyproxy('proxy', PROXY_PORT, []);
    tinyproxy('auth-proxy', AUTH_PROXY_PORT, ['BasicAuth svpn s3cret']);
    await listening(hub, PROXY_PORT);
    await listening(hub, AUTH_PROXY_PORT);
  },
  {
    alsoNeeds: tinyproxyMissing,
    skipNote: 'linux-client-proxy: SKIPPING (registered as skipped)',
    cleanUp: () => {
      pki?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  },
);


it('a tcp client and a wss client through the proxy reach ready and ping each other over the VPN', async () => {
  const a = c1.client('tcp-via-proxy', ['-s', '127.0.0.1', '-p', String(plainPort), '--proxy', `http://${hubAddr}:${PROXY_PORT}`, ...FAST]);
  const b = c2.node('wss-via-proxy', CLIENT_BIN, ['--log-format', 'json', '-s', `wss://127.0.0.1:${tlsPort}/`, '--ca', pki.ca, ...FAST], { https_proxy: `http://${hubAddr2}:${PROXY_PORT}` });
  try {
    const ra = await a.waitFor('ready', () => true, 15_000);
    const rb = await b.waitFor('ready', () => true, 15_000);
    const conn = b.lines.find((l) => l.event === 'connecting')!;
    assert.is(conn.transport, 'wss');
    assert.is(conn.proxy, `http://${hubAddr2}:${PROXY_PORT}`);
    assert.ok(await c1.ping(String(rb.address), 3, 3), `ping ${rb.address} from c1:\n${a.tail()}\n${b.tail()}`);
    assert.ok(await c2.ping(String(ra.address), 3, 3), `ping ${ra.address} from c2`);
  } finally {
    assert.is((await a.stop('SIGTERM')).code, 0);
    assert.is((await b.stop('SIGTERM')).code, 0);
  }
});

it('credentials in --proxy pass a proxy that wants them', async () => {
  const a = c1.client('auth-ok', ['-s', '127.0.0.1', '-p', String(plainPort), '--proxy', `http://svpn:s3cret@${hubAddr}:${AUTH_PROXY_PORT}`, ...FAST]);
  try {
    assert.ok((await a.waitFor('ready', () => true, 15_000)).address);
    assert.not.ok(a.output.join('\n').includes('s3cret'), 'the password is never logged');
  } finally {
    assert.is((await a.stop('SIGTERM')).code, 0);
  }
});

async function refused(name: string, args: string[]): Promise<Record<string, unknown>> {
  const c = c1.client(name, [...args, ...FAST]);
  const { code } = await c.exitWithin(15_000);
  assert.is(code, 3, `exit status:\n${c.tail()}`);
  const lines = c.lines.filter((l) => l.event === 'proxy_refused');
  assert.is(lines.length, 1, c.tail());
  assert.not.ok(c.lines.some((l) => l.event === 'down'), `a retry was announced:\n${c.tail()}`);
  return lines[0];
}

it('a proxy that wants credentials (407): exit 3, naming the --proxy form that carries them', async () => {
  const l = await refused('auth-missing', ['-s', '127.0.0.1', '-p', String(plainPort), '--proxy', `http://${hubAddr}:${AUTH_PROXY_PORT}`]);
  assert.match(String(l.reason), new RegExp(`^the proxy wants credentials: --proxy http://user:pass@${hubAddr.replace(/\./g, '\\.')}:${AUTH_PROXY_PORT} \\(407`));
});

it('a proxy that refuses CONNECT to the port (403): exit 3, naming HOST:PORT', async () => {
  const l = await refused('forbidden', ['-s', '127.0.0.1', '-p', '2999', '--proxy', `http://${hubAddr}:${PROXY_PORT}`]);
  assert.match(String(l.reason), /^the proxy refuses CONNECT to 127\.0\.0\.1:2999 \(403/);
});

it('a wss server certificate the client does not trust, through the proxy: exit 3 with the --ca hint', async () => {
  const c = c1.client('wss-other-ca', ['-s', `wss://127.0.0.1:${tlsPort}/`, '--ca', pki.otherCa, '--proxy', `http://${hubAddr}:${PROXY_PORT}`, ...FAST]);
  const { code } = await c.exitWithin(15_000);
  assert.is(code, 3, c.tail());
  const l = c.lines.find((x) => x.event === 'tls_certificate_rejected');
  assert.ok(l, c.tail());
  assert.match(String(l!.fix), /^give --ca FILE/);
});

it('a proxy that cannot be reached: logged as such, retried', async () => {
  const c = c1.client('no-proxy-there', ['-s', '127.0.0.1', '-p', String(plainPort), '--proxy', 'http://127.0.0.1:1', ...FAST]);
  try {
    const d = await c.waitFor('down', () => true, 10_000);
    assert.match(String(d.reason), /^cannot reach the proxy 127\.0\.0\.1:1: ECONNREFUSED/);
    assert.ok(Number(d.retry_in_s) > 0);
  } finally {
    await c.stop('SIGTERM');
  }
});

test.run();
