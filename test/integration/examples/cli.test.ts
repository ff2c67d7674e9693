// The example programs as a user meets them: --help, bad usage (exit 2), and the gateway's
// reconnect with backoff against a port where nothing listens, then a clean SIGTERM (exit 0).
// Loopback only.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { ROOT } from '../../support/paths.js';

const root = ROOT;
const GATEWAY = root + 'dist/js/examples/node-gateway/main.js';
const NODE_DEVICE = root + 'dist/js/examples/device/node.js';
const QJS_DEVICE = root + 'dist/js/examples/quickjs/run-device.js';

const run = (script: string, args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', timeout: 20_000 });

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('--help: usage on stdout, exit 0, for all three programs', () => {
  for (const [script, usage] of [
    [GATEWAY, 'Usage: vpn-gateway --server HOST'],
    [NODE_DEVICE, 'Usage: device-node --server HOST --collector ADDR:PORT'],
    [QJS_DEVICE, 'Usage: device-quickjs --server HOST --collector ADDR:PORT'],
  ]) {
    const r = run(script, ['--help']);
    assert.is(r.status, 0, script);
    assert.ok(r.stdout.startsWith(usage), r.stdout);
    assert.match(r.stdout, /Exit status: 0 after SIGINT or SIGTERM/);
  }
  assert.match(run(QJS_DEVICE, ['--help']).stdout, /--memory-limit BYTES/);
});

test('bad usage exits 2 and names the problem on stderr', () => {
  const cases: Array<[string, string[], RegExp]> = [
    [GATEWAY, [], /the server is required/],
    [GATEWAY, ['--server', 'x', '--bogus'], /bogus/],
    [GATEWAY, ['--server', 'x', '--port', '70000'], /--port must be/],
    [GATEWAY, ['--server', 'x', '--address', '10.0.0'], /--address must be an IPv4 address/],
    [GATEWAY, ['--server', 'x', '--echo-port', '9', '--status-port', '9'], /must differ/],
    [GATEWAY, ['--server', 'x', '--min-backoff', '5', '--max-backoff', '1'], /--min-backoff must not exceed/],
    [GATEWAY, ['--server', 'x', 'extra'], /extra/],
    [NODE_DEVICE, ['--server', 'x'], /the collector is required/],
    [NODE_DEVICE, ['--server', 'x', '--collector', '10.0.0.1'], /--collector must be ADDRESS:PORT/],
    [NODE_DEVICE, ['--server', 'x', '--collector', '10.0.0.1:1', '--interval', 'soon'], /--interval must be a number/],
    [QJS_DEVICE, ['--server', 'x', '--collector', '10.0.0.1:1', '--memory-limit', '12'], /--memory-limit must be/],
    [QJS_DEVICE, ['--collector', '10.0.0.1:1'], /the server is required/],
  ];
  for (const [script, args, msg] of cases) {
    const r = run(script, args);
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.is(r.stdout, '');
  }
});

test('the gateway retries with growing, capped backoff when the server is unreachable, and exits 0 on SIGTERM', async () => {
  const port = await closedPort();
  const child = spawn(process.execPath, [GATEWAY, '--server', '127.0.0.1', '--port', String(port), '--min-backoff', '0.05', '--max-backoff', '0.4'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const end = Date.now() + 10_000;
  while (lines().filter((l) => l.event === 'down').length < 6 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
  const code = await exited;
  clearTimeout(kill);
  const downs = lines().filter((l) => l.event === 'down');
  assert.ok(downs.length >= 6, `at least 6 attempts failed: ${out}`);
  assert.equal(
    downs.slice(0, 6).map((d) => d.attempt),
    [1, 2, 3, 4, 5, 6],
    'attempts are counted',
  );
  for (const d of downs) {
    assert.match(d.reason, /^(connect_failed|connect_timeout|closed)$/);
    assert.match(d.detail, /could not connect|ECONNREFUSED|connection closed/);
  }
  // Upper half of min * 2^n, capped at max: [25,50] [50,100] [100,200] [200,400] then [200,400] ms.
  const bounds = [
    [0.025, 0.05],
    [0.05, 0.1],
    [0.1, 0.2],
    [0.2, 0.4],
    [0.2, 0.4],
    [0.2, 0.4],
  ];
  downs.slice(0, 6).forEach((d, i) => assert.ok(d.retry_in_s >= bounds[i][0] - 0.001 && d.retry_in_s <= bounds[i][1] + 0.001, `retry ${i + 1}: ${d.retry_in_s} s`));
  assert.is(code, 0, 'exit 0 after SIGTERM');
  const last = lines().pop();
  assert.is(last.event, 'stopped');
  assert.ok(last.connects >= downs.length, `connects ${last.connects}`);
});

test.run();
