// The operator's command line, as built by build.mjs into dist/bin/simplevpn-server.js and run
// as a child process: usage errors (exit 2), the log lines, SIGTERM/SIGINT (exit 0), --config,
// and the status listener over HTTP. Always --no-tun and 127.0.0.1: no root, no tun, no outside traffic.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliServer, runCli } from '../../support/server-cli.js';
import { RawClient, SdkPeer, freePort, ip, waitFor } from '../../support/server-net.js';

const OPTIONS = [
  '--auth-bearer',
  '--cert-id',
  '--new-device-key',
  '--port',
  '--host',
  '--subnet',
  '--address',
  '--tun',
  '--no-tun',
  '--no-warm-up',
  '--mtu',
  '--idle-timeout',
  '--keepalive',
  '--handshake-timeout',
  '--max-clients',
  '--max-frame',
  '--send-queue',
  '--route',
  '--status',
  '--log-format',
  '--log-level',
  '--config',
  '--help',
  '--version',
];

const tmp = mkdtempSync(join(tmpdir(), 'svpn-cli-test-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function writeConfig(name: string, obj: unknown): string {
  const f = join(tmp, name);
  writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

const BASE = ['--no-tun', '--host', '127.0.0.1', '--port', '0', '--log-format', 'json'];

// ---- usage ---------------------------------------------------------------------------------

test('--help exits 0 and mentions every option', async () => {
  for (const flag of ['--help', '-h']) {
    const r = await runCli([flag]);
    assert.is(r.code, 0, flag);
    for (const o of OPTIONS) assert.ok(r.stdout.includes(o), `${flag} mentions ${o}`);
    assert.ok(r.stdout.includes('-p, --port'), '-p');
  }
});

test('--version prints the version and exits 0', async () => {
  const r = await runCli(['--version']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});

test('every option --help lists is accepted by the parser', async () => {
  const cfg = writeConfig('ok.json', { mtu: 1400 });
  const values: Record<string, string[]> = {
    '--port': ['0'],
    '-p': ['0'],
    '--host': ['127.0.0.1'],
    '--subnet': ['10.0.0.0/24'],
    '--address': ['10.0.0.1'],
    '--tun': ['svpn9'],
    '--no-tun': [],
    '--no-warm-up': [],
    '--mtu': ['1400'],
    '--idle-timeout': ['60'],
    '--keepalive': ['10'],
    '--handshake-timeout': ['5'],
    '--max-clients': ['10'],
    '--max-frame': ['9000'],
    '--send-queue': ['262144'],
    '--route': ['10.1.0.0/16'],
    '--subnet6': ['fd00:5:6::/64'],
    '--route6': ['2001:db8::/32'],
    '--status': ['9100'],
    '--log-format': ['json'],
    '--log-level': ['warn'],
    '--config': [cfg],
  };
  const results = await Promise.all(Object.entries(values).map(async ([flag, v]) => ({ flag, r: await runCli([flag, ...v, '--help']) })));
  const rejected = results.filter((x) => x.r.code !== 0).map((x) => `${x.flag}: exit ${x.r.code}: ${x.r.stderr.split('\n')[0]}`);
  assert.equal(rejected, [], 'options rejected:\n' + rejected.join('\n'));
});

test('an unknown flag exits 2 with a message naming it', async () => {
  for (const bad of ['--bogus', '--no-such-thing', '-x']) {
    const r = await runCli([bad]);
    assert.is(r.code, 2, bad);
    assert.ok(r.stderr.includes(bad), `message names ${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--help/, 'points at --help');
  }
  const pos = await runCli(['extra']);
  assert.is(pos.code, 2);
  assert.match(pos.stderr, /extra/);
});

test('bad values exit 2 with a message about that option (not "unknown option")', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--subnet', '10.0.0.0/33'], /subnet/],
    [['--subnet', '10.0.0.0/31'], /subnet/],
    [['--subnet', '10.0.0.1/24'], /host bits/],
    [['--port', 'x'], /port/],
    [['--port', '70000'], /port/],
    [['--mtu', '10'], /mtu/],
    [['--subnet'], /--subnet needs a value/],
    [['--port', '--no-tun'], /--port needs a value/],
    [['--log-format', 'xml'], /log-format/],
    [['--log-level', 'loud'], /log-level/],
    [['--keepalive', '60', '--idle-timeout', '60'], /keepalive/],
    [['--address', '10.9.9.9'], /address/],
    [['--status', 'nope'], /status/],
    [['--route', '300.0.0.0/8'], /route/],
    [['--tun', 'a/b'], /tun/],
    [['--port', '1', '--port', '2'], /more than once/],
  ];
  const results = await Promise.all(cases.map(async ([args, re]) => ({ args, re, r: await runCli(['--no-tun', ...args]) })));
  for (const { args, re, r } of results) {
    const what = args.join(' ');
    assert.is(r.code, 2, `${what}: exit code (stderr: ${r.stderr})`);
    assert.match(r.stderr, re, `${what}: ${r.stderr}`);
    assert.not.match(r.stderr, /unknown option/, `${what}: ${r.stderr}`);
    assert.match(r.stderr, /^simplevpn-server: /);
  }
});

test('--config: a missing file, bad JSON, an unknown key or a bad value exit 2', async () => {
  const cases: Array<[string, RegExp]> = [
    [join(tmp, 'missing.json'), /no such file/],
    [writeConfig('bad.json', '{ "port": '), /not valid JSON/],
    [writeConfig('array.json', '[1,2]'), /JSON object/],
    [writeConfig('unknown.json', { bogus: 1 }), /bogus/],
    [writeConfig('badval.json', { mtu: 10 }), /mtu/],
  ];
  for (const [file, re] of cases) {
    const r = await runCli(['--config', file]);
    assert.is(r.code, 2, file + ': ' + r.stderr);
    assert.match(r.stderr, re);
  }
});

// ---- running ---------------------------------------------------------------------------------

test('runs with --no-tun on port 0, logs listening/connect/assign/disconnect as JSON, SIGTERM exits 0 with stopped', async () => {
  const s = new CliServer(BASE);
  try {
    const port = await s.port();
    const listening = await s.event('listening');
    assert.is(listening.level, 'info');
    assert.is(listening.tun, 'none');
    assert.is(listening.subnet, '10.0.0.0/16');
    assert.ok(Date.parse(listening.time) > 0, 'time stamp');
    await s.event('tun_disabled');
    const c = await RawClient.connect(port);
    try {
      const addr = await c.requestSeed();
      const assign = await s.event('assign');
      assert.is(ip(assign.address), addr);
      assert.is(assign.mode, 'dynamic');
      assert.is(assign.protocol, 'seed');
      await s.event('connect');
    } finally {
      c.destroy();
    }
    const d = await s.event('disconnect');
    assert.is(d.reason, 'client_closed');
    assert.ok('rx_bytes' in d && 'tx_bytes' in d && 'duration_s' in d, JSON.stringify(d));
    const exit = await s.stop('SIGTERM');
    assert.equal(exit, { code: 0, signal: null });
    await s.event('stopped');
  } finally {
    s.kill();
  }
});

test('SIGINT exits 0 and closes connected clients', async () => {
  const s = new CliServer(BASE);
  try {
    const c = await RawClient.connect(await s.port());
    try {
      await c.requestSeed();
      assert.equal(await s.stop('SIGINT'), { code: 0, signal: null });
      await c.waitClosed(3000);
    } finally {
      c.destroy();
    }
    assert.ok(s.events.some((e) => e.event === 'disconnect' && e.reason === 'shutdown'), 'sessions closed with reason shutdown');
  } finally {
    s.kill();
  }
});

// Ctrl-C under sudo: the terminal signals the whole process group and sudo relays the same
// signal, so the server hears it twice at once. That is one request to stop, not two.
test('two SIGINTs at once (Ctrl-C under sudo): one clean stop, exit 0, no forced_exit', async () => {
  const s = new CliServer(BASE);
  try {
    await s.port();
    s.signal('SIGINT');
    s.signal('SIGINT');
    await waitFor(() => s.exit !== null, 7000, 'exit after two SIGINTs', () => s.stderr.slice(-2000));
    assert.equal(s.exit, { code: 0, signal: null });
    assert.is(s.events.filter((e) => e.event === 'stopping').length, 1);
    assert.not.ok(s.events.some((e) => e.event === 'forced_exit'), 'no forced exit');
  } finally {
    s.kill();
  }
});

test('text log format is the default: one "time level event key=value" line per event', async () => {
  const s = new CliServer(['--no-tun', '--host', '127.0.0.1', '--port', '0']);
  try {
    await waitFor(() => /info listening /.test(s.stderr) || s.exit !== null, 5000, 'the listening line', () => s.stderr);
    const line = s.stderr.split('\n').find((l) => l.includes(' listening '))!;
    assert.match(line, /^\d{4}-\d\d-\d\dT\S+Z info listening addresses=127\.0\.0\.1:\d+ subnet=10\.0\.0\.0\/16 /);
    assert.equal(await s.stop(), { code: 0, signal: null });
  } finally {
    s.kill();
  }
});

test('a port already in use: exit 1 with a message saying so', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const r = await runCli(['--no-tun', '--host', '127.0.0.1', '--port', String(port), '--log-format', 'json']);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /start_failed/);
    assert.match(r.stderr, /already in use/);
  } finally {
    blocker.close();
  }
});

test('--config FILE is honoured (camelCase and kebab-case keys) and flags override it', async () => {
  const file = writeConfig('server.json', {
    subnet: '10.55.0.0/24',
    port: 1, // overridden by --port 0 (binding port 1 would fail without root)
    tun: false,
    host: '127.0.0.1',
    mtu: 1300, // overridden by --mtu
    'idle-timeout': 30,
    logFormat: 'json',
    routes: ['192.168.9.0/24'],
  });
  const s = new CliServer(['--config', file, '--port', '0', '--mtu', '1400']);
  try {
    const l = await s.event('listening');
    assert.is(l.subnet, '10.55.0.0/24');
    assert.is(l.mtu, 1400, 'the flag wins');
    assert.is(l.idle_timeout, 30);
    assert.is(l.tun, 'none');
    const port = await s.port();
    assert.is.not(port, 1);
    const peer = new SdkPeer(port);
    try {
      const info = await peer.ready();
      assert.match(info.address!, /^10\.55\.0\./);
      assert.equal(info.routes, [{ network: '192.168.9.0', prefix: 24 }]);
    } finally {
      peer.close();
    }
    assert.equal(await s.stop(), { code: 0, signal: null });
  } finally {
    s.kill();
  }
});

// ---- status listener ---------------------------------------------------------------------

test('--status: /metrics in Prometheus text, /clients as JSON for a connected SDK client, 404 elsewhere', async () => {
  const statusPort = await freePort();
  const s = new CliServer([...BASE, '--subnet', '10.66.0.0/24', '--status', `127.0.0.1:${statusPort}`]);
  try {
    const st = await s.event('status_listening');
    assert.is(st.address, `127.0.0.1:${statusPort}`);
    const port = await s.port();
    const peer = new SdkPeer(port, { name: 'cli-test' });
    try {
      const info = await peer.ready();
      const base = `http://${st.address}`;
      const m = await fetch(base + '/metrics', { signal: AbortSignal.timeout(3000) });
      assert.is(m.status, 200);
      assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await m.text();
      assert.match(text, /^simplevpn_sessions 1$/m);
      assert.match(text, /^simplevpn_addresses_in_use 1$/m);
      assert.match(text, /^simplevpn_addresses_free 252$/m);
      assert.match(text, /^simplevpn_received_bytes_total 0$/m);
      assert.match(text, /^simplevpn_sent_packets_total 0$/m);
      assert.match(text, /^simplevpn_dropped_packets_total\{reason="spoofed_source"\} 0$/m);
      assert.match(text, /^# TYPE simplevpn_refusals_total counter$/m);
      const c = await fetch(base + '/clients', { signal: AbortSignal.timeout(3000) });
      assert.is(c.status, 200);
      const list = (await c.json()) as any[];
      assert.is(list.length, 1);
      assert.is(list[0].address, info.address);
      assert.is(list[0].name, 'cli-test');
      assert.match(list[0].remote, /^127\.0\.0\.1:\d+$/);
      for (const k of ['connectedSince', 'lastSeen']) assert.ok(Number.isFinite(Date.parse(list[0][k])), k);
      for (const k of ['rxBytes', 'txBytes']) assert.type(list[0][k], 'number');
      const nf = await fetch(base + '/nope', { signal: AbortSignal.timeout(3000) });
      assert.is(nf.status, 404);
      await nf.text();
    } finally {
      peer.close();
    }
    assert.equal(await s.stop(), { code: 0, signal: null });
  } finally {
    s.kill();
  }
});

test('--status 127.0.0.1:0 binds any free port and logs it in status_listening', async () => {
  const s = new CliServer([...BASE, '--status', '127.0.0.1:0']);
  try {
    const st = await s.event('status_listening');
    assert.match(st.address, /^127\.0\.0\.1:\d+$/);
    assert.is.not(st.address, '127.0.0.1:0');
    const r = await fetch(`http://${st.address}/metrics`, { signal: AbortSignal.timeout(3000) });
    assert.is(r.status, 200);
    await r.text();
    assert.equal(await s.stop(), { code: 0, signal: null });
  } finally {
    s.kill();
  }
});

test.run();
