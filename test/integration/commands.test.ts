// Every command line the docs print works as printed (issue 10).
//
// The shell lines of the fenced blocks of README.md, docs/*.md and examples/README.md, and
// the "Examples:" of the two --help texts, are read from the files (and programs) themselves
// and run through `bash -c` exactly as printed, with the PATH of a user's shell, `sudo`
// included, in a network namespace of their own (loopback only; the docs' host name
// vpn.example.net and address 192.0.2.10 lead to a server the test runs there, and
// proxy.example.net to a tinyproxy it runs there for the lines that use a proxy). The global
// install the README asks for, `sudo npm install -g .`, runs as printed too: its writes to
// npm's global folders land in overlays that only the test's commands see (see
// doc-commands.ts). Long-running programs are started, seen to reach their ready line, then
// stopped as the docs say (Ctrl-C: SIGINT to the process group; SIGTERM to the process the
// shell started), and must exit 0 and leave no process and no tun device behind.
//
// LINES below says, for every command line in the docs, how it is run, or why it is not.
// A line in the docs that LINES does not know, or an entry of LINES that no doc prints any
// more, fails the first test.
//
// The README's SDK snippet is type-checked against the package's published types, as a
// project that installed simplevpn sees them, and then run against a server, where the
// packet it sends once ready must arrive.

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { transformSync } from 'esbuild';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CLIENT_BIN,
  type DocLine,
  type Job,
  type Namespace,
  ROOT,
  SERVER_BIN,
  SHELL_LANGS,
  Sandbox,
  docFiles,
  fences,
  helpLines,
  makeCerts,
  nodeFlags,
  shellLines,
  unavailable,
  until,
} from './doc-commands.js';

const skip = unavailable();
const it = skip ? test.skip : test;
if (skip) console.log(`commands: skipped: ${skip}`);

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const HOST = 'vpn.example.net'; // the server name the README's client lines dial
const DOC_ADDRESS = '192.0.2.10'; // the server address examples/README.md's lines dial
const PROXY_HOST = 'proxy.example.net'; // the HTTP proxy the README's --proxy and https_proxy lines name
const PROXY_PORT = 3128;

// ---- what each documented line is, and how it is checked ----------------------------------

/**
 * A server of the test's own for the lines: `firewall` is the server README's "Through
 * firewalls" lines reach: WebSocket at /vpn on the plain port and on 443 (TLS, the port of
 * wss:// without one, where a user's reverse proxy would listen), with a certificate for
 * vpn.example.net from the CA in ca.pem, and tinyproxy at proxy.example.net:3128.
 */
type Fixture = 'plain' | 'tls' | 'mtls' | 'examples' | 'firewall';

interface Daemon {
  kind: 'daemon';
  /** The line that says it is up. */
  ready: RegExp;
  /** A server of the test's own that the line connects to. */
  fixture?: Fixture;
  /** Where the line runs: the clone (default), or a directory holding the files it names. */
  cwd?: 'repo' | 'work';
  /** Checks made while it is up. */
  whileUp?: (ns: Namespace, ready: RegExpExecArray, job: Job) => void | Promise<void>;
}
interface Once {
  kind: 'once';
  /** 'repo': the line writes into the checkout (a build, a report); its writes are discarded. */
  mode: 'repo' | 'plain';
  expect: RegExp;
  ms: number;
}
interface Install {
  kind: 'install';
}
interface Listed {
  kind: 'listed';
  why: string;
}
type Spec = Daemon | Once | Install | Listed;

const SERVER_READY = /\blistening\b.*/;
/** README.md's lines that issue sensor-7 a client certificate, run in the CA's directory. */
const ISSUE_CERT = [
  'openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sensor-7 -keyout sensor-7.key -out sensor-7.csr',
  'openssl x509 -req -in sensor-7.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out sensor-7.pem',
];
const CLIENT_READY = /\bready address=(\d+\.\d+\.\d+\.\d+)\b.*/;
const JSON_READY = /"event":"ready","address":"(\d+\.\d+\.\d+\.\d+)"/;
const BENCH_MINUTES =
  'a benchmark of minutes on both cores of this shared machine that installs Debian packages (iperf3, openvpn, wireguard) with apt-get; ' +
  'the bench has its own checks (bench/), and its --help and --render lines run here';

/** Keyed by the command as printed without its trailing comment (commandOf). */
const LINES: Record<string, Spec> = {
  // README.md, Set up
  'npm install': {
    kind: 'listed',
    why: 'fetches from the npm registry, and the test sends nothing beyond loopback; CI runs its twin, npm ci, before npm test on a fresh machine (.ci/run)',
  },
  'npm test': { kind: 'listed', why: 'runs the whole suite, this test included' },
  'sudo npm install -g .': { kind: 'install' },
  // README.md, Run the server
  'sudo simplevpn-server': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (ns, ready) => {
      // What the line's comment promises: 10.0.0.0/16, port 2002, tun svpn0 with 10.0.0.1.
      assert.match(ready[0], /addresses=\S*:2002\b/, 'port 2002');
      assert.match(ready[0], /subnet=10\.0\.0\.0\/16\b/, 'subnet 10.0.0.0/16');
      assert.match(ready[0], /\btun=svpn0\b/, 'tun svpn0');
      const addr = ns.exec(['ip', '-o', '-4', 'addr', 'show', 'dev', 'svpn0']);
      assert.match(addr.stdout, /inet 10\.0\.0\.1\/16\b/, 'svpn0 has 10.0.0.1');
    },
  },
  'sudo simplevpn-server --subnet 10.8.0.0/24 --route 192.168.50.0/24 --status 9100': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (ns, ready) => {
      assert.match(ready[0], /subnet=10\.8\.0\.0\/24\b/);
      const metrics = fetchIn(ns, 'http://127.0.0.1:9100/metrics');
      assert.match(metrics, /^simplevpn_sessions 0$/m, 'metrics on 127.0.0.1:9100');
    },
  },
  // README.md, IPv6 inside the tunnel
  'sudo simplevpn-server --subnet6 fd00:5:6::/64 --route6 2001:db8:77::/48': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (ns, ready) => {
      assert.match(ready[0], /\bsubnet6=fd00:5:6::\/64\b/);
      const addr = ns.exec(['ip', '-o', '-6', 'addr', 'show', 'dev', 'svpn0']);
      assert.match(addr.stdout, /inet6 fd00:5:6::a00:1\/64\b/, 'svpn0 has the server\'s IPv6 address');
    },
  },
  'simplevpn-server --no-tun': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (_ns, ready) => assert.match(ready[0], /\btun=none\b/),
  },
  'simplevpn-server --no-tun --ws-path /vpn --ws-origin https://app.example.net --trust-proxy 127.0.0.1': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (ns, ready) => {
      assert.match(ready[0], /\bwebsocket=\/vpn\b/);
      assert.match(ready[0], /\btrusted_proxies=127\.0\.0\.1\/32\b/);
      // WebSocket at /vpn on port 2002, for pages of the origin given (and clients that send none), nowhere else.
      assert.is(upgradeIn(ns, 2002, '/vpn', ['Origin: https://app.example.net', 'X-Forwarded-For: 203.0.113.9']), 'HTTP/1.1 101 Switching Protocols');
      assert.is(upgradeIn(ns, 2002, '/vpn', []), 'HTTP/1.1 101 Switching Protocols');
      assert.is(upgradeIn(ns, 2002, '/vpn', ['Origin: https://elsewhere.example']), 'HTTP/1.1 403 Forbidden');
      assert.is(upgradeIn(ns, 2002, '/', []), 'HTTP/1.1 404 Not Found');
    },
  },
  // README.md, Keep leases across a restart, or share them among servers
  'sudo simplevpn-server --state leases.json': {
    kind: 'daemon',
    ready: SERVER_READY,
    cwd: 'work',
    whileUp: (ns, ready) => {
      assert.match(ready[0], /\bleases="?file leases\.json\b/);
      const state = ns.exec(['cat', join(work, 'leases.json')]);
      assert.match(state.stdout, /"format":"simplevpn-leases 1"/, 'the state file, written at start');
    },
  },
  'sudo sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=2': { kind: 'once', mode: 'plain', expect: /net\.ipv4\.ip_forward = 1\s+net\.ipv4\.conf\.all\.rp_filter = 2/, ms: 30_000 },
  'sudo simplevpn-server --etcd http://10.1.0.5:2379 --cluster-advertise 10.1.0.11 --status 9100': {
    kind: 'daemon',
    ready: SERVER_READY,
    whileUp: (ns, ready) => {
      // No etcd at 10.1.0.5 here: the server starts, refuses assignments, and says so.
      assert.match(ready[0], /\bleases="?etcd http:\/\/10\.1\.0\.5:2379 \/simplevpn\//);
      assert.match(fetchIn(ns, 'http://127.0.0.1:9100/metrics'), /^simplevpn_lease_store_reachable\{store="etcd"\} 0$/m);
      const cluster = JSON.parse(fetchIn(ns, 'http://127.0.0.1:9100/cluster'));
      assert.is(cluster.advertise, '10.1.0.11');
      assert.is(cluster.reachable, false);
    },
  },
  'sudo simplevpn-client -s vpn1.example.net,vpn2.example.net,vpn3.example.net': {
    kind: 'listed',
    why: 'needs three servers of one cluster on etcd: test/integration/cluster/follow.test.ts runs simplevpn-client with -s A,B,C and with a name of three addresses against three servers in namespaces, and kills the one in use',
  },
  ...Object.fromEntries(
    [
      'sudo ip link add svpn-vx mtu 1450 type vxlan id 4242 dstport 4789 local 203.0.113.1',
      'sudo bridge fdb append 00:00:00:00:00:00 dev svpn-vx dst 198.51.100.2',
      'sudo ip addr add 172.31.0.1/24 dev svpn-vx',
      'sudo ip link set svpn-vx up',
    ].map((line): [string, Spec] => [
      line,
      {
        kind: 'listed',
        why: 'a recipe for two hosts whose lines build on one another (each needs the device the one before made): test/integration/cluster/cluster.test.ts runs them as printed, in order, on two namespaces in different networks',
      },
    ]),
  ),
  ...Object.fromEntries(
    [
      'sudo ip link add svpn-gre2 type gre local 203.0.113.1 remote 198.51.100.2 ttl 64',
      'sudo ip addr add 172.30.0.1 peer 172.30.0.2 dev svpn-gre2',
      'sudo ip link set svpn-gre2 up',
    ].map((line): [string, Spec] => [
      line,
      {
        kind: 'listed',
        why: 'a recipe for two hosts whose lines build on one another: test/integration/cluster/gre.test.ts runs them as printed, in order, and their mirror on the other host, as the link between two servers of a cluster (where the kernel has GRE: it skips, saying so, on a kernel without it)',
      },
    ]),
  ),
  // README.md, Run the Linux client
  'sudo simplevpn-client -s vpn.example.net': { kind: 'daemon', ready: CLIENT_READY, fixture: 'plain', whileUp: tunUp },
  'sudo simplevpn-client -s vpn.example.net -a 10.0.3.7': {
    kind: 'daemon',
    ready: CLIENT_READY,
    fixture: 'plain',
    whileUp: (ns, ready) => {
      assert.is(ready[1], '10.0.3.7', 'the address asked for');
      tunUp(ns);
    },
  },
  'sudo simplevpn-client -s vpn.example.net --tls --ca ca.pem --id sensor-7 --secret-file secret': {
    kind: 'daemon',
    ready: CLIENT_READY,
    fixture: 'tls',
    cwd: 'work',
    whileUp: tunUp,
  },
  'sudo simplevpn-client -s vpn.example.net --tls --ca ca.pem --id sensor-8 --device-key-file sensor-8.key': {
    kind: 'daemon',
    ready: CLIENT_READY,
    fixture: 'tls',
    cwd: 'work',
    whileUp: tunUp,
  },
  'sudo simplevpn-client -s vpn.example.net --tls --ca ca.pem --cert sensor-7.pem --key sensor-7.key': {
    kind: 'daemon',
    ready: CLIENT_READY,
    fixture: 'mtls',
    cwd: 'work',
    whileUp: tunUp,
  },
  // README.md, Issue credentials
  'simplevpn-server --new-device-key': { kind: 'once', mode: 'plain', expect: /^\{"secret":"scram\$4096\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}","key":"[A-Za-z0-9_-]{43}"\}$/m, ms: 30_000 },
  ...Object.fromEntries(
    ISSUE_CERT.map((line): [string, Spec] => [
      line,
      { kind: 'listed', why: "needs the CA's private key: run as printed by test.before, in the test CA's directory, to issue the certificate the mutual-TLS client line presents" },
    ]),
  ),
  // README.md, Through firewalls: each through the transport and the proxy its line names.
  'sudo simplevpn-client -s wss://vpn.example.net/vpn --ca ca.pem': firewallLine('wss', null),
  'sudo simplevpn-client -s ws://vpn.example.net:2002/vpn': firewallLine('ws', null),
  'sudo simplevpn-client -s vpn.example.net --proxy http://proxy.example.net:3128': firewallLine('tcp', `${HOST}:2002`),
  'sudo env https_proxy=http://proxy.example.net:3128 simplevpn-client -s wss://vpn.example.net/vpn --ca ca.pem': firewallLine('wss', `${HOST}:443`),
  // docs/performance.md, Running it
  'npm run bench': { kind: 'listed', why: BENCH_MINUTES },
  'npm run bench -- --quick': { kind: 'listed', why: BENCH_MINUTES },
  'npm run bench -- --rounds 1 --seconds 5': { kind: 'listed', why: BENCH_MINUTES },
  'npm run bench -- tun switch': { kind: 'listed', why: BENCH_MINUTES },
  'npm run bench -- --rounds 3 --seconds 20 --no-profile': { kind: 'listed', why: BENCH_MINUTES },
  'npm run bench -- --render': { kind: 'once', mode: 'repo', expect: /latest\.(md|svg)/, ms: 180_000 },
  'npm run bench -- --help': { kind: 'once', mode: 'repo', expect: /--quick/, ms: 180_000 },
  // docs/performance.md, 1b: the hub's NAT towards the host beyond it
  [`nft 'table ip svpn_bench_nat { chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "veth3a" masquerade; }; }'`]: {
    kind: 'listed',
    why: "the bench's own rule, applied by bench/netlab.ts in the hub's namespace during the tun-internet section (nft comes from nftables, which only the bench installs); test/unit/bench/report-internet.test.ts checks that the docs print what netlab.ts applies",
  },
  // README.md, Set up: fuzzing (build, then each target's fixed CI budget with seed 1: the same
  // inputs on every machine, nothing saved; 'repo' discards writes anyway)
  'npm run fuzz -- --ci': { kind: 'once', mode: 'repo', expect: /switch: \d+ runs in [\d.]+ s[^\n]*crashes 0/, ms: 180_000 },
  'npm run fuzz -- --time 600 --target server-session': {
    kind: 'listed',
    why: 'ten minutes of one target with a seed from the clock; the line above runs the same program on every target for its fixed CI budget with seed 1 (as test/unit/fuzz/ci-budget.test.ts does)',
  },
  // examples/README.md, Run them
  'node dist/js/examples/device/node.js --server 192.0.2.10 --collector 10.0.0.2:5005': { kind: 'daemon', ready: JSON_READY, fixture: 'examples' },
  'node dist/js/examples/quickjs/run-device.js --server 192.0.2.10 --collector 10.0.0.2:5005 --memory-every 60': {
    kind: 'daemon',
    ready: JSON_READY,
    fixture: 'examples',
  },
  'node dist/js/examples/node-gateway/main.js --server 192.0.2.10 --name gw-1': { kind: 'daemon', ready: JSON_READY, fixture: 'examples' },
  'node dist/js/examples/ports/xsnap-run-device.js --server 192.0.2.10 --collector 10.0.0.2:5005': { kind: 'daemon', ready: JSON_READY, fixture: 'examples' },
  'node_modules/.bin/bun dist/js/examples/ports/run-device.js --server 192.0.2.10 --collector 10.0.0.2:5005': { kind: 'daemon', ready: JSON_READY, fixture: 'examples' },
  'node_modules/.bin/deno run --allow-net --allow-read=dist dist/js/examples/ports/run-device.js --server 192.0.2.10 --collector 10.0.0.2:5005': {
    kind: 'daemon',
    ready: JSON_READY,
    fixture: 'examples',
  },
};

/** Fence languages other than shell, and what is done with them. */
const OTHER_LANGS: Record<string, string> = {
  ts: "the README's SDK snippet: type-checked and run by the last test (it must be the only one)",
  js: 'firmware sketches for Moddable XS and Espruino (examples/README.md): engines that are not on this machine',
  text: 'a diagram or output, not code',
  conf: "bird2's configuration file in README.md's cluster guide, not commands: test/integration/cluster/bgp.test.ts runs bird2 with it",
};

/**
 * A line of "Through firewalls": up over `transport` (the client's connecting line says so,
 * and the fixture server's log shows the session), through the proxy with a CONNECT to
 * `via` or not through it at all.
 */
function firewallLine(transport: 'tcp' | 'ws' | 'wss', via: string | null): Daemon {
  return {
    kind: 'daemon',
    ready: CLIENT_READY,
    fixture: 'firewall',
    cwd: 'work',
    whileUp: async (ns, ready, job) => {
      tunUp(ns);
      const connecting = /^.*\bconnecting\b.*$/m.exec(job.output)?.[0] ?? '';
      assert.ok(transport === 'tcp' ? !/\btransport=/.test(connecting) : connecting.includes(`transport=${transport}`), `the client dialled over ${transport}: ${connecting}`);
      assert.is(connecting.includes(`proxy=http://${PROXY_HOST}:${PROXY_PORT}`), via !== null, `the client's proxy: ${connecting}`);
      const proxy = fixtureJobs.find((j) => j.what === 'tinyproxy')!;
      if (via) assert.match(proxy.output, new RegExp(`CONNECT ${via.replace(/\./g, '\\.')} HTTP/1\\.1`), `tinyproxy tunnelled to ${via}:\n${proxy.tail()}`);
      else assert.not.match(proxy.output, /CONNECT \S+ HTTP/, `nothing through the proxy:\n${proxy.tail()}`);
      // The server's line of the session may come a moment after the client's ready.
      const server = fixtureJobs.find((j) => j.what.startsWith('fixture server'))!;
      const gave = new RegExp(`\\b${ready[1]!.replace(/\./g, '\\.')}\\b`);
      await until(`the server's line of ${ready[1]}`, () => gave.test(server.output), 5000).catch(() => {});
      assert.match(server.output, gave, `the server gave ${ready[1]}:\n${server.tail()}`);
      if (transport === 'tcp') assert.not.match(server.output, /\bupgrade\b/, 'no WebSocket at the server');
      else assert.match(server.output, new RegExp(`\\bupgrade\\b.*\\btransport=${transport}\\b`), `the server's WebSocket session over ${transport}`);
    },
  };
}

function tunUp(ns: Namespace): void {
  const links = ns.links();
  assert.ok(links.some((l) => l.startsWith('svpn')), `a tun device while up: ${links.join(', ')}`);
}

/** GET `url` from inside the namespace, bounded. */
function fetchIn(ns: Namespace, url: string): string {
  const r = ns.exec([process.execPath, '-e', `fetch(${JSON.stringify(url)}).then(async (r) => process.stdout.write(await r.text()), (e) => { console.error(String(e)); process.exit(1); })`], 10_000);
  if (r.code !== 0) throw new Error(`GET ${url} in ${ns.name}: ${r.stderr}`);
  return r.stdout;
}

/** The status line the server answers a WebSocket upgrade at `path` with, from inside the namespace, bounded. */
function upgradeIn(ns: Namespace, port: number, path: string, headers: string[]): string {
  const request = [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', ...headers, '', ''].join('\r\n');
  const script = `const s = require('node:net').connect(${port}, '127.0.0.1', () => s.write(${JSON.stringify(request)}));
    let b = ''; s.on('data', (d) => { b += d; const i = b.indexOf('\\r\\n'); if (i >= 0) { process.stdout.write(b.slice(0, i)); s.destroy(); } });
    s.on('error', (e) => { console.error(String(e)); process.exit(1); });
    setTimeout(() => process.exit(2), 5000).unref();`;
  const r = ns.exec([process.execPath, '-e', script], 10_000);
  if (r.code !== 0) throw new Error(`upgrade at ${path} in ${ns.name}: ${r.code} ${r.stderr}`);
  return r.stdout;
}

// ---- the sandbox, and the files the lines name -----------------------------------------

let sandbox: Sandbox | null = null;
let work = ''; // cwd of the lines that name files: ca.pem, secret
let tlsFiles = { cert: '', key: '', ca: '', auth: '' };

function box(): Sandbox {
  if (!sandbox) throw new Error('no sandbox');
  return sandbox;
}

test.before(() => {
  if (skip) return;
  sandbox = new Sandbox();
  work = sandbox.mkdir('work');
  const pki = sandbox.mkdir('pki');
  const certs = makeCerts(pki, HOST);
  writeFileSync(join(work, 'ca.pem'), readFileSync(certs.ca));
  const secret = 'd0c5' + Math.random().toString(16).slice(2).padEnd(12, '0') + 'abcdefabcdefabcd';
  writeFileSync(join(work, 'secret'), secret + '\n', { mode: 0o600 });
  // The auth file's hash, made the way SECURITY.md says: simplevpn-server --hash-secret.
  const h = spawnSync(process.execPath, [SERVER_BIN, '--hash-secret'], { input: secret + '\n', encoding: 'utf8', timeout: 30_000 });
  if (h.status !== 0) throw new Error(`--hash-secret: ${h.stderr}`);
  // A device key, made the way README.md says: simplevpn-server --new-device-key.
  const k = spawnSync(process.execPath, [SERVER_BIN, '--new-device-key'], { encoding: 'utf8', timeout: 30_000 });
  if (k.status !== 0) throw new Error(`--new-device-key: ${k.stderr}`);
  const device = JSON.parse(k.stdout) as { secret: string; key: string };
  writeFileSync(join(work, 'sensor-8.key'), device.key + '\n', { mode: 0o600 });
  // sensor-7's client certificate, issued by README.md's lines as printed.
  for (const line of ISSUE_CERT) {
    const r = spawnSync('bash', ['-c', line], { cwd: pki, encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`${line}: ${r.stderr}`);
  }
  for (const f of ['sensor-7.pem', 'sensor-7.key']) writeFileSync(join(work, f), readFileSync(join(pki, f)));
  const auth = join(pki, 'clients.json');
  writeFileSync(auth, JSON.stringify({ clients: [{ id: 'sensor-7', secret: h.stdout.trim() }, { id: 'sensor-8', secret: device.secret }] }));
  tlsFiles = { cert: certs.cert, key: certs.key, ca: certs.ca, auth };
});

test.after(() => {
  sandbox?.cleanup();
  sandbox = null;
});

function fixtureArgs(f: Fixture): string[] {
  const base = ['--no-tun', '--log-format', 'text'];
  if (f === 'plain') return [...base, '--host', '127.0.0.1'];
  if (f === 'examples') return [...base, '--host', DOC_ADDRESS];
  const cert = ['--tls-cert', tlsFiles.cert, '--tls-key', tlsFiles.key];
  if (f === 'firewall') return [...base, '--host', '127.0.0.1', '--ws-path', '/vpn', '--tls-port', '443', ...cert];
  const tls = [...base, '--host', '127.0.0.1', ...cert, '--auth', tlsFiles.auth];
  return f === 'mtls' ? [...tls, '--tls-ca', tlsFiles.ca] : tls;
}

/** The programs of the running fixture (the server first). */
let fixtureJobs: Job[] = [];

async function startFixture(ns: Namespace, f: Fixture, extra: string[] = []): Promise<Job[]> {
  const job = ns.spawn(`fixture server (${f})`, [process.execPath, ...nodeFlags(SERVER_BIN), SERVER_BIN, ...fixtureArgs(f), ...extra]);
  fixtureJobs = [job];
  const tlsPort = f === 'tls' || f === 'mtls' ? 2003 : f === 'firewall' ? 443 : 0;
  await job.waitFor(tlsPort ? new RegExp(`\\blistening\\b.*tls_addresses=\\S*:${tlsPort}\\b`) : SERVER_READY, 20_000);
  if (f === 'firewall') fixtureJobs.push(await startProxy(ns));
  return fixtureJobs;
}

/**
 * tinyproxy at proxy.example.net:3128 (Debian's package, as a user's proxy would be), in the
 * foreground with its log on stderr: CONNECT to the server's plain port and to 443 only.
 */
async function startProxy(ns: Namespace): Promise<Job> {
  const dir = box().mkdir('proxy');
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [`Port ${PROXY_PORT}`, 'Listen 127.0.0.1', 'User nobody', 'Group nogroup', 'Timeout 60', 'MaxClients 10', 'LogLevel Info', 'Allow 127.0.0.1', 'ConnectPort 2002', 'ConnectPort 443'].join('\n') + '\n',
  );
  const job = ns.spawn('tinyproxy', ['tinyproxy', '-d', '-c', conf]);
  await until(`tinyproxy listening on ${PROXY_PORT}`, () => job.exit !== null || ns.exec(['ss', '-Hltn', `sport = :${PROXY_PORT}`]).stdout.trim() !== '', 10_000, 100);
  if (job.exit !== null) throw new Error(`tinyproxy exited (${job.exit.code ?? job.exit.signal}):\n${job.tail()}`);
  return job;
}

// ---- the tests ---------------------------------------------------------------------------

const FILES = docFiles();
let helpError = '';
const HELP_LINES = ((): DocLine[] => {
  try {
    return [...helpLines(SERVER_BIN, 'simplevpn-server'), ...helpLines(CLIENT_BIN, 'simplevpn-client')];
  } catch (err) {
    helpError = String(err);
    return [];
  }
})();
const DOC_LINES = [...shellLines(FILES), ...HELP_LINES];
const where = (d: DocLine) => `${d.file}:${d.line}`;
/** Each command once, with every place that prints it: a line the README and a --help share runs once. */
const UNIQUE: DocLine[][] = [];
for (const d of DOC_LINES) {
  const same = UNIQUE.find((g) => g[0]!.command === d.command);
  if (same) same.push(d);
  else UNIQUE.push([d]);
}

test('every fenced block of the docs is of a known kind, and every shell line is run or listed', () => {
  const problems: string[] = [];
  let ts = 0;
  for (const file of FILES) {
    for (const f of fences(file)) {
      if (SHELL_LANGS.has(f.lang)) continue;
      if (!f.lang) problems.push(`${file}:${f.line}: a fence without a language: mark it sh (commands, run by this test), ts, js or text`);
      else if (!OTHER_LANGS[f.lang]) problems.push(`${file}:${f.line}: a fence of language "${f.lang}" that this test does not know`);
      if (f.lang === 'ts') ts++;
    }
  }
  assert.is(ts, 1, 'exactly one ts block (the SDK snippet in README.md)');
  assert.ok(DOC_LINES.length >= 10, `found ${DOC_LINES.length} shell lines`);
  for (const d of DOC_LINES) if (!LINES[d.command]) problems.push(`${where(d)}: "${d.command}" is neither run nor listed in LINES of test/integration/commands.test.ts`);
  const printed = new Set(DOC_LINES.map((d) => d.command));
  for (const c of Object.keys(LINES)) if (!printed.has(c)) problems.push(`LINES has "${c}", which no doc prints any more`);
  assert.equal(problems, [], problems.join('\n'));
  const listed = DOC_LINES.filter((d) => LINES[d.command]!.kind === 'listed');
  console.log(`commands: ${DOC_LINES.length} documented lines (${UNIQUE.length} different commands), ${DOC_LINES.length - listed.length} run, ${listed.length} listed as not run:`);
  for (const d of listed) console.log(`  ${where(d)} ${d.command}: ${(LINES[d.command] as Listed).why}`);
});

test('the --help texts name the commands as the docs run them, and show examples that run', () => {
  assert.is(helpError, '', 'reading the --help texts');
  for (const [bin, name] of [
    [SERVER_BIN, 'simplevpn-server'],
    [CLIENT_BIN, 'simplevpn-client'],
  ] as const) {
    const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.is(r.status, 0, `${name} --help`);
    assert.ok(r.stdout.startsWith(`Usage: ${name} `), `${name} --help starts with its usage`);
    // Its examples are among the lines the other tests run (the first test checks each is known).
    const examples = HELP_LINES.filter((d) => d.file === `${name} --help`);
    assert.ok(examples.length > 0, `${name} --help shows examples`);
    for (const d of examples) assert.ok(d.text.startsWith(name) || d.text.startsWith(`sudo ${name}`), `${where(d)}: "${d.text}" runs ${name}`);
  }
});

const INSTALL = DOC_LINES.filter((d) => LINES[d.command]?.kind === 'install');

it('README: the global install, as printed, puts both commands where sudo and a shell find them', async () => {
  assert.is(INSTALL.length, 1, 'one install line');
  const d = INSTALL[0]!;
  const ns = box().namespace();
  try {
    const job = ns.run(d.text, { cwd: ROOT, mode: 'install' });
    const r = await job.waitExit(240_000);
    assert.equal({ code: r.code, signal: r.signal, killed: r.killed }, { code: 0, signal: null, killed: false }, `${where(d)} ${d.text}:\n${job.tail()}`);
    box().installed = true;
    const bin = join(box().prefix, 'bin');
    const which = 'command -v simplevpn-server; command -v simplevpn-client';
    for (const line of [`sudo sh -c '${which}'`, `sh -c '${which}'`]) {
      const j = ns.run(line, { cwd: work });
      const x = await j.waitExit(30_000);
      assert.is(x.code, 0, `${line}:\n${j.output}`);
      assert.equal(j.output.trim().split('\n'), [join(bin, 'simplevpn-server'), join(bin, 'simplevpn-client')], line);
    }
    const v = ns.run('sudo simplevpn-server --version', { cwd: work });
    await v.waitExit(30_000);
    assert.is(v.output.trim(), VERSION);
  } finally {
    ns.destroy();
  }
});

for (const [d, ...also] of UNIQUE as [DocLine, ...DocLine[]][]) {
  const spec = LINES[d.command];
  if (!spec || spec.kind === 'listed' || spec.kind === 'install') continue;
  const name = `${where(d)}: ${d.text.replace(/\s+/g, ' ')}` + (also.length ? ` (also ${also.map(where).join(', ')})` : '');

  if (spec.kind === 'once') {
    it(name, async () => {
      const ns = box().namespace({ hosts: [HOST, PROXY_HOST], addresses: [`${DOC_ADDRESS}/32`] });
      try {
        const job = ns.run(d.text, { cwd: ROOT, mode: spec.mode });
        const r = await job.waitExit(spec.ms);
        assert.equal({ code: r.code, signal: r.signal, killed: r.killed }, { code: 0, signal: null, killed: false }, job.tail());
        assert.match(job.output, spec.expect);
      } finally {
        ns.destroy();
      }
    });
    continue;
  }

  it(name, async () => {
    const ns = box().namespace({ hosts: [HOST, PROXY_HOST], addresses: [`${DOC_ADDRESS}/32`] });
    try {
      const fixture = spec.fixture ? await startFixture(ns, spec.fixture) : [];
      const keep = new Set(fixture.map((j) => j.pid));
      const linksBefore = ns.links().sort();
      // Ctrl-C in the terminal: SIGINT to the job's process group. Then `kill PID`: SIGTERM
      // to the process the shell started (sudo, which passes it on, or the program itself).
      for (const [sig, to] of [
        ['SIGINT', 'group'],
        ['SIGTERM', 'leader'],
      ] as const) {
        const job = ns.run(d.text, { cwd: spec.cwd === 'work' ? work : ROOT });
        const ready = await job.waitFor(spec.ready, 30_000);
        await spec.whileUp?.(ns, ready, job);
        job.signal(sig, to);
        const r = await job.waitExit(15_000);
        const how = `${sig} to the ${to === 'group' ? 'process group' : 'process the shell started'}`;
        assert.equal({ code: r.code, signal: r.signal, killed: r.killed }, { code: 0, signal: null, killed: false }, `exit status after ${how}:\n${job.tail()}`);
        // Nothing of it left running, and its tun device gone.
        let left: number[] = [];
        await until('the namespace to hold only the fixture', () => (left = ns.pids().filter((p) => !keep.has(p))).length === 0, 5000).catch(() => {});
        assert.equal(left, [], `processes left after ${how}`);
        let links: string[] = [];
        await until('the tun device to go', () => (links = ns.links().sort()).join() === linksBefore.join(), 5000).catch(() => {});
        assert.equal(links, linksBefore, `devices after ${how}`);
      }
      for (const j of fixture) {
        j.signal('SIGTERM', 'group');
        await j.waitExit(10_000);
      }
    } finally {
      ns.destroy();
    }
  });
}

// ---- the SDK snippet -------------------------------------------------------------------

/** What the snippet leaves to the application, defined as an application would. */
const SNIPPET_PRELUDE = `// Stand-ins for what the README's snippet leaves to the application.
const myStack = { input(buf: Uint8Array, offset: number, length: number): void { void buf; void offset; void length; } };
// One 20-byte IPv4 packet, from the first address the server gives to the server's own.
const ipv4Packet: Uint8Array = Uint8Array.from([0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 253, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
`;

it("README: the SDK snippet type-checks against the package's types, and sends once ready", async () => {
  const blocks = fences('README.md').filter((f) => f.lang === 'ts');
  assert.is(blocks.length, 1, 'one ts block in README.md');
  const snippet = blocks[0]!.lines.map((l) => l.text).join('\n') + '\n';
  // A project that depends on simplevpn, as `npm install /path/to/simplevpn` makes it.
  const app = box().mkdir('sdk-app');
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(ROOT, join(app, 'node_modules/simplevpn'));
  symlinkSync(join(ROOT, 'node_modules/@types'), join(app, 'node_modules/@types'));
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'sdk-app', private: true, type: 'module', dependencies: { simplevpn: `file:${ROOT}` } }));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'] }, files: ['snippet.ts'] }),
  );
  const source = SNIPPET_PRELUDE + snippet;
  writeFileSync(join(app, 'snippet.ts'), source);
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', app], { cwd: app, encoding: 'utf8', timeout: 120_000 });
  assert.is(tsc.status, 0, `tsc on the snippet:\n${tsc.stdout}${tsc.stderr}\n--- snippet.ts\n${source}`);

  writeFileSync(join(app, 'snippet.mjs'), transformSync(source, { loader: 'ts', format: 'esm', target: 'node20' }).code);
  const ns = box().namespace({ hosts: [HOST] });
  try {
    await startFixture(ns, 'plain', ['--status', '127.0.0.1:9101']);
    const run = ns.spawn('snippet', [process.execPath, join(app, 'snippet.mjs')], app);
    await run.waitFor(/^ready 10\.0\.0\.2$/m, 30_000);
    let metrics = '';
    await until(
      'the packet at the server',
      () => /^simplevpn_received_packets_total [1-9]/m.test((metrics = fetchIn(ns, 'http://127.0.0.1:9101/metrics'))),
      10_000,
      200,
    ).catch(() => {});
    assert.match(metrics, /^simplevpn_received_packets_total 1$/m, `the server received the packet sent on ready:\n${run.tail()}`);
    run.kill();
  } finally {
    ns.destroy();
  }
});

test.run();
