// Clients behind a reverse proxy. --trust-proxy makes the server take the client's address
// from X-Forwarded-For or Forwarded, and only on connections from the proxies it lists: a
// client elsewhere that sends those headers itself is its own address. Behind a real nginx
// (Debian's, started here on loopback ports with a configuration of the test's own, the
// way its documentation proxies WebSocket), the log, /clients and the per-source limits
// see each client's own address (clients come from 127.0.0.5 and 127.0.0.6; nginx reaches
// the server from 127.0.0.1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forwardedElements, forwardedFor, TrustedProxies } from '../../../server/src/transport/proxy.js';
import { parseTrustedNet } from '../../../server/src/config/config.js';
import { type Harness, equalBytes, extRequest, freePort, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { memoryLogger } from '../../support/security-kit.js';
import { RawWs, httpExchange, upgradeRequest, wsTo } from '../../support/websocket-kit.js';

/** Upgrades with `headers` from `localAddress`, asks for an address; the server's view of the client. */
async function join_(h: Harness, headers: string[], localAddress = '127.0.0.1'): Promise<{ c: RawWs; remote: string | undefined }> {
  const c = h.track(await RawWs.open(h.port, { headers, localAddress }));
  if (c.status !== 101) return { c, remote: undefined };
  c.sendStream(extRequest());
  await waitFor(() => c.frames.length >= 1 || c.closed, 3000, 'the reply');
  // The newest WebSocket session is this one.
  const mine = h.server.clients().filter((x) => x.transport === 'ws').sort((a, b) => b.id - a.id)[0];
  return { c, remote: mine?.remote };
}

test('the forwarding headers, read from the right, past trusted hops only', () => {
  const t = new TrustedProxies(['127.0.0.1', '10.0.0.0/8', '::1'].map(parseTrustedNet));
  const xff = (v: string, peer = '127.0.0.1') => t.client(peer, [v], undefined);
  assert.equal(xff('203.0.113.7'), { ip: '203.0.113.7', forwarded: true });
  assert.equal(xff('198.51.100.1, 203.0.113.7'), { ip: '203.0.113.7', forwarded: true }, 'the left one is what the client wrote');
  assert.equal(xff('203.0.113.7, 10.1.2.3'), { ip: '203.0.113.7', forwarded: true }, 'a second trusted proxy is skipped');
  assert.equal(xff('10.1.2.3, 10.4.5.6'), { ip: '10.1.2.3', forwarded: true }, 'all trusted: the first');
  assert.equal(xff('203.0.113.7', '192.0.2.9'), { ip: '192.0.2.9', forwarded: false }, 'an untrusted peer is the client');
  assert.equal(xff('garbage, 203.0.113.7'), { ip: '203.0.113.7', forwarded: true });
  assert.equal(xff('203.0.113.7, garbage'), { ip: '127.0.0.1', forwarded: false }, 'a proxy that writes garbage: the peer');
  assert.equal(xff('[2001:db8::7]:4711'), { ip: '2001:db8::7', forwarded: true });
  assert.equal(xff('203.0.113.7:5555'), { ip: '203.0.113.7', forwarded: true });
  assert.equal(xff('::ffff:203.0.113.7'), { ip: '203.0.113.7', forwarded: true });
  assert.equal(t.client('::1', undefined, ['for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"']), { ip: '2001:db8:cafe::17', forwarded: true });
  assert.equal(t.client('127.0.0.1', ['203.0.113.7'], ['for=198.51.100.9']), { ip: '203.0.113.7', forwarded: true }, 'X-Forwarded-For before Forwarded');
  assert.equal(t.client('127.0.0.1', undefined, ['for=unknown']), { ip: '127.0.0.1', forwarded: false }, 'an obfuscated for= names nobody');
  assert.equal(t.client('127.0.0.1', undefined, undefined), { ip: '127.0.0.1', forwarded: false }, 'no header: the peer');
  assert.equal(forwardedFor(['a, 192.0.2.1', '192.0.2.2']), [null, '192.0.2.1', '192.0.2.2']);
  assert.equal(forwardedElements(['For="192.0.2.1";proto=https', 'by=x']), ['192.0.2.1', null]);
  assert.ok(t.has('10.200.0.1') && t.has('::1') && !t.has('11.0.0.1') && !t.has('::2'));
});

test('--trust-proxy: the forwarded address from a trusted peer is the client in /clients and the log; from any other peer the headers are ignored', async () => {
  const log = memoryLogger();
  await withServer({ subnet: '10.80.0.0/24', trustProxy: '127.0.0.1/32', logger: log }, async (h) => {
    const trusted = await join_(h, ['X-Forwarded-For: 198.51.100.1, 203.0.113.7']);
    assert.is(trusted.remote, '203.0.113.7');
    const up = log.find('upgrade')[0].fields;
    assert.is(up.remote, '203.0.113.7');
    assert.match(up.via, /^127\.0\.0\.1:\d+$/);
    assert.is(log.find('assign')[0].fields.remote, '203.0.113.7', 'assign names the client');
    const fwd = await join_(h, ['Forwarded: for="[2001:db8::17]:4711"']);
    assert.is(fwd.remote, '[2001:db8::17]');
    // From 127.0.0.2, which is not trusted: its claims are its own business.
    const spoof = await join_(h, ['X-Forwarded-For: 203.0.113.99', 'Forwarded: for=203.0.113.98'], '127.0.0.2');
    assert.match(spoof.remote ?? '', /^127\.0\.0\.2:\d+$/);
    assert.is(log.find('upgrade')[2].fields.via, undefined);
  });
});

test('per-source limits count a trusted proxy\'s clients under their own addresses, and a spoofing peer under its own', async () => {
  await withServer({ subnet: '10.81.0.0/24', trustProxy: ['127.0.0.1'], maxPerSource: 1 }, async (h) => {
    // Through the trusted proxy: one connection per client address.
    const a = await join_(h, ['X-Forwarded-For: 203.0.113.1']);
    const b = await join_(h, ['X-Forwarded-For: 203.0.113.2']);
    assert.equal([a.c.status, b.c.status], [101, 101], 'two clients behind one proxy');
    const again = await httpExchange(h.port, upgradeRequest('/', ['X-Forwarded-For: 203.0.113.1']), 2000);
    assert.is(again.status, 429, 'the second from 203.0.113.1');
    assert.is(h.metrics.refusals.per_source_limit, 1);
    // An untrusted peer cannot spread itself over made-up addresses.
    const s1 = await join_(h, ['X-Forwarded-For: 198.51.100.1'], '127.0.0.3');
    assert.is(s1.c.status, 101);
    const s2 = await RawWs.open(h.port, { headers: ['X-Forwarded-For: 198.51.100.2'], localAddress: '127.0.0.3' });
    h.track(s2);
    assert.ok(s2.closed && s2.status === 0, 'refused at the TCP level, before a byte is read');
    assert.is(h.metrics.refusals.per_source_limit, 2);
    // The limit is released when the forwarded client leaves.
    a.c.destroy();
    await waitFor(() => h.sessions === 3, 3000, 'a to be gone');
    const back = await join_(h, ['X-Forwarded-For: 203.0.113.1']);
    assert.is(back.c.status, 101);
  });
});

// ---- a real nginx ------------------------------------------------------------------------

const NGINX = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).status === 0 ? 'nginx' : null;
const withNginx = NGINX ? test : test.skip;
if (!NGINX) console.log('proxy: the nginx tests are skipped: nginx is not installed (apt-get install nginx-light)');

class Nginx {
  readonly dir = mkdtempSync(join(tmpdir(), 'svpn-nginx-'));
  child: ChildProcess | null = null;
  output = '';

  constructor(
    readonly port: number,
    readonly upstream: number,
  ) {
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(this.dir, d));
    // How nginx's documentation proxies WebSocket (nginx.org/en/docs/http/websocket.html),
    // with the client's address appended to X-Forwarded-For.
    const conf = `worker_processes 1;
daemon off;
master_process off;
user root;
pid ${this.dir}/nginx.pid;
error_log ${this.dir}/error.log info;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${this.dir}/body;
  proxy_temp_path ${this.dir}/proxy;
  fastcgi_temp_path ${this.dir}/fastcgi;
  uwsgi_temp_path ${this.dir}/uwsgi;
  scgi_temp_path ${this.dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location /vpn {
      proxy_pass http://127.0.0.1:${upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 1h;
    }
  }
}
`;
    writeFileSync(join(this.dir, 'nginx.conf'), conf);
  }

  async start(): Promise<void> {
    this.child = spawn('nginx', ['-p', this.dir, '-e', join(this.dir, 'error.log'), '-c', join(this.dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d) => (this.output += d));
    this.child.stderr!.on('data', (d) => (this.output += d));
    const end = Date.now() + 10_000;
    for (;;) {
      if (this.child.exitCode !== null) throw new Error(`nginx exited (${this.child.exitCode}): ${this.output}${this.log()}`);
      const up = await new Promise<boolean>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: this.port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
      if (up) return;
      if (Date.now() > end) throw new Error(`nginx did not listen on ${this.port} within 10 s: ${this.output}${this.log()}`);
      await sleep(50);
    }
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

withNginx('behind nginx: SDK clients over ws:// through the proxy exchange packets, and the server logs, lists and limits each by its own address', async () => {
  const log = memoryLogger();
  await withServer({ subnet: '10.82.0.0/24', wsPath: '/vpn', trustProxy: '127.0.0.1', maxPerSource: 1, logger: log }, async (h) => {
    const proxy = new Nginx(await freePort(), h.port);
    try {
      await proxy.start();
      const from = (localAddress: string) => h.sdk({ connect: wsTo(proxy.port, { path: '/vpn', options: { localAddress } }) });
      const a = from('127.0.0.5');
      const b = from('127.0.0.6');
      const [ra, rb] = await Promise.all([a.ready(5000), b.ready(5000)]);
      const remotes = Object.fromEntries(h.server.clients().map((c) => [c.address, c.remote]));
      assert.equal([remotes[ra.address], remotes[rb.address]], ['127.0.0.5', '127.0.0.6'], 'each by its own address');
      assert.ok(h.server.clients().every((c) => c.transport === 'ws'));
      const assigns = log.find('assign').map((l) => l.fields.remote).sort();
      assert.equal(assigns, ['127.0.0.5', '127.0.0.6']);
      assert.ok(log.find('upgrade').every((l) => /^127\.0\.0\.1:\d+$/.test(l.fields.via)), 'via nginx');
      // Packets both ways through nginx.
      const p = ipPacket(a.address, b.address, 1200, rng(3));
      a.client.send(p);
      await waitFor(() => b.packets.some((x) => equalBytes(x, p)), 3000, 'the packet through nginx');
      // The limit (--max-per-source 1) holds per client, not per proxy: a second client from 127.0.0.5 is refused.
      const a2 = from('127.0.0.5');
      a2.start();
      await a2.waitState('down', 5000);
      assert.is(h.metrics.refusals.per_source_limit, 1);
      const refusal = log.find('refuse_connection').find((l) => l.fields.reason === 'per_source_limit');
      assert.is(refusal?.fields.remote, '127.0.0.5');
      a2.close();
      // What nginx passes on of a refusal: the 429 itself.
      const direct = await httpExchange(proxy.port, upgradeRequest('/vpn'), 3000, { localAddress: '127.0.0.5' });
      assert.is(direct.status, 429);
      // Wrong path at the server, through nginx: the server's 404.
      const nf = await httpExchange(proxy.port, upgradeRequest('/vpn/other'), 3000, { localAddress: '127.0.0.7' });
      assert.is(nf.status, 404);
      a.close();
      b.close();
      await waitFor(() => h.sessions === 0, 5000, 'no session left', () => h.server.clients());
    } finally {
      await proxy.stop();
    }
  });
});

test.run();
