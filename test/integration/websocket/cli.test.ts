// simplevpn-server's WebSocket flags, as an operator gives them: --help lists them, bad
// values are usage errors (exit 2) that say what is wrong, the config file takes the same
// options, and a server started with them serves WebSocket clients at the path given,
// or none at all with --no-ws.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliServer, SERVER_BIN, runCli } from '../../support/server-cli.js';
import { CLIENT_BIN } from '../../support/paths.js';
import { RawWs, bufferutilLoads, httpExchange, upgradeRequest, wsTo } from '../../support/websocket-kit.js';
import { SdkPeer, equalBytes, ipPacket, rng, waitFor } from '../../support/server-net.js';

const tmp = mkdtempSync(join(tmpdir(), 'svpn-ws-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const BASE = ['--no-tun', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json'];

test('--help lists the WebSocket flags', async () => {
  const r = await runCli(['--help']);
  assert.is(r.code, 0);
  for (const f of ['--ws-path PATH', '--ws-origin ORIGIN', '--trust-proxy CIDR', '--no-ws']) assert.ok(r.stdout.includes(f), f);
});

test('bad values are usage errors that name the flag and what it takes', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--ws-path', 'vpn'], /--ws-path must be a path starting with \//],
    [['--ws-path', '/a?b'], /--ws-path/],
    [['--trust-proxy', '300.1.1.1'], /--trust-proxy must be an IPv4 or IPv6 address/],
    [['--trust-proxy', '10.0.0.1/8'], /--trust-proxy 10\.0\.0\.1\/8 has host bits set/],
    [['--trust-proxy', '::1/129'], /at most 128/],
    [['--ws-origin', 'https://app.example.net/page'], /--ws-origin must be an origin/],
    [['--ws-origin', 'app.example.net'], /--ws-origin must be an origin/],
    [['--no-ws', '--ws-path', '/x'], /--ws-path is for the WebSocket transport, which --no-ws turns off/],
    [['--no-ws', '--trust-proxy', '127.0.0.1', '--ws-origin', 'https://a.example'], /--ws-origin and --trust-proxy are for the WebSocket transport/],
    [['--ws'], /--ws is the default; use --no-ws/],
    [['--ws-path'], /--ws-path needs a value/],
    [['--ws-path', '/a', '--ws-path', '/b'], /--ws-path given more than once/],
  ];
  const results = await Promise.all(cases.map(([args]) => runCli([...BASE, ...args])));
  results.forEach((r, i) => {
    assert.is(r.code, 2, cases[i][0].join(' '));
    assert.match(r.stderr, cases[i][1]);
  });
});

test('the flags, repeated and comma-separated, and the same options in a config file (either spelling), start a server that serves WebSocket at the path', async () => {
  const cfg = join(tmp, 'ws.json');
  writeFileSync(cfg, JSON.stringify({ 'ws-path': '/tunnel', trustProxy: ['127.0.0.1/32'], wsOrigin: 'https://a.example' }));
  for (const args of [
    ['--ws-path', '/tunnel', '--trust-proxy', '127.0.0.1', '--trust-proxy', '::1,10.0.0.0/8', '--ws-origin', 'https://a.example', '--ws-origin', 'http://localhost:8080'],
    ['--config', cfg],
  ]) {
    const s = new CliServer([...BASE, ...args]);
    try {
      const up = await s.event('listening', 10_000);
      assert.is(up.websocket, '/tunnel');
      assert.match(up.trusted_proxies, /^127\.0\.0\.1\/32/);
      const port = await s.port();
      assert.is((await httpExchange(port, upgradeRequest('/'))).status, 404);
      assert.is((await httpExchange(port, upgradeRequest('/tunnel', ['Origin: https://b.example']))).status, 403);
      const c = await RawWs.open(port, { path: '/tunnel', headers: ['X-Forwarded-For: 203.0.113.5'] });
      assert.is(c.status, 101);
      const peer = new SdkPeer(port, { connect: wsTo(port, { path: '/tunnel' }) });
      const tcp = new SdkPeer(port);
      try {
        await Promise.all([peer.ready(5000), tcp.ready(5000)]);
        const conn = await s.event('upgrade', 5000, (e) => e.remote === '203.0.113.5');
        assert.match(conn.via, /^127\.0\.0\.1:\d+$/);
        await everyLengthIntact(peer, tcp);
      } finally {
        peer.close();
        tcp.close();
      }
      c.destroy();
      assert.equal(await s.stop(), { code: 0, signal: null });
    } finally {
      s.kill();
    }
  }
});

/** Packets of every length from a WebSocket client to a TCP one, through the server: its unmasking intact. */
async function everyLengthIntact(peer: SdkPeer, tcp: SdkPeer): Promise<void> {
  const sent = [21, 31, 32, 33, 63, 64, 65, 333, 1399, 1400, 1500].map((n, i) => ipPacket(peer.address, tcp.address, n, rng(i)));
  for (const p of sent) peer.client.send(p);
  await waitFor(() => tcp.packets.length === sent.length, 5000, 'every packet', () => tcp.packets.length);
  assert.ok(sent.every((p, i) => equalBytes(tcp.packets[i], p)), 'intact');
}


test('the bundled CLIs load bufferutil\'s native binary for ws (from node_modules, not bundled); SIMPLEVPN_WS_MASK=js keeps them off it', () => {
  const native = bufferutilLoads();
  for (const bin of [SERVER_BIN, CLIENT_BIN]) {
    const trace = (env: Record<string, string>) => spawnSync(process.execPath, [bin, '--version'], { env: { ...process.env, NODE_DEBUG: 'module', ...env }, encoding: 'utf8', timeout: 10_000 });
    const on = trace({});
    assert.is(on.status, 0, on.stderr.slice(-500));
    // node-gyp-build requires the binary by its path: prebuilds/<platform>-<arch>/bufferutil.node, or build/Release/ when compiled.
    assert.is(/REQUEST \S*bufferutil\.node /.test(on.stderr), native, `${bin}: the native binary loaded, as it does here: ${native}`);
    const off = trace({ SIMPLEVPN_WS_MASK: 'js' });
    assert.is(off.status, 0);
    assert.not.match(off.stderr, /REQUEST bufferutil/, `${bin} with SIMPLEVPN_WS_MASK=js`);
  }
});

test('the bundled server with the JavaScript masking (SIMPLEVPN_WS_MASK=js) unmasks packets of every length intact', async () => {
  process.env.SIMPLEVPN_WS_MASK = 'js';
  let s: CliServer;
  try {
    s = new CliServer(BASE);
  } finally {
    delete process.env.SIMPLEVPN_WS_MASK;
  }
  try {
    const port = await s.port();
    const peer = new SdkPeer(port, { connect: wsTo(port) });
    const tcp = new SdkPeer(port);
    try {
      await Promise.all([peer.ready(5000), tcp.ready(5000)]);
      await everyLengthIntact(peer, tcp);
    } finally {
      peer.close();
      tcp.close();
    }
    assert.equal(await s.stop(), { code: 0, signal: null });
  } finally {
    s.kill();
  }
});

test('--no-ws (or "ws": false in the config file): the ports take the raw stream only; HTTP there is a malformed stream', async () => {
  const cfg = join(tmp, 'nows.json');
  writeFileSync(cfg, JSON.stringify({ ws: false }));
  for (const args of [['--no-ws'], ['--config', cfg]]) {
    const s = new CliServer([...BASE, '--handshake-timeout', '1', ...args]);
    try {
      const up = await s.event('listening', 10_000);
      assert.is(up.websocket, 'off');
      const a = await httpExchange(await s.port(), upgradeRequest('/'), 3000);
      assert.is(a.status, 0, 'no HTTP answer');
      assert.ok(a.closed);
      // "GET " reads as an IPv4 header of 21536 bytes: the server waits for the rest, then gives up.
      const gone = await s.event('disconnect', 3000);
      assert.ok(gone.reason !== 'refused', gone.reason);
      assert.equal(await s.stop(), { code: 0, signal: null });
    } finally {
      s.kill();
    }
  }
});

test.run();
