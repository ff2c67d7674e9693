// README's bird2 configuration, as printed (its neighbour made this test's router), on a
// server of a cluster of two on one etcd: bird takes in the routes simplevpn writes to the
// kernel (proto 157: the other server's clients, via its advertise address) and announces
// them by BGP; a router running bird2 too learns them into its kernel and reaches the other
// server's client by them; the route goes when the client's lease does. Debian's bird2
// (/usr/sbin/bird), each instance in a namespace with a socket and files of its own.
// Topology otherwise: test/support/cluster-lab.ts; the router is one more host on the bridge.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterLab, type ClusterServer, clusterUnavailable } from '../../support/cluster-lab.js';
import { type Host, type Proc, until } from '../../support/lab.js';
import { fences } from '../doc-commands.js';

const BIRD = '/usr/sbin/bird';
const birdMissing = spawnSync(BIRD, ['--version'], { timeout: 5000 }).status === 0 ? null : 'bird2 is not installed (apt-get install bird2)';
const skip = clusterUnavailable() ?? birdMissing;
const it = skip ? test.skip : test;
if (skip) console.log(`cluster over BGP: skipped: ${skip}`);

let L: ClusterLab;
let s1: ClusterServer, s2: ClusterServer;
let dir = '';

if (!skip) {
  test.before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'svpn-bgp-'));
    L = new ClusterLab(2);
    [s1, s2] = L.servers as [ClusterServer, ClusterServer];
    await L.startAll();
  });
  test.after(async () => {
    await L?.destroy(); // ends bird too: it runs in the lab's namespaces
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}

/** bird in `host` with `config`, in the foreground, its control socket in the test's folder. */
function bird(host: Host, name: string, config: string): Proc {
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, config);
  const parse = spawnSync(BIRD, ['-p', '-c', conf], { encoding: 'utf8', timeout: 5000 });
  assert.is(parse.status, 0, `${name}'s configuration: ${parse.stderr}`);
  return host.spawn(`bird-${name}`, [BIRD, '-f', '-c', conf, '-s', join(dir, `${name}.ctl`), '-P', join(dir, `${name}.pid`)]);
}

/** The router's kernel routes that bird put there. */
async function learned(router: Host): Promise<string[]> {
  const r = await router.exec(['ip', 'route', 'show', 'proto', 'bird']);
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

it("README's bird2 file on a server announces the other server's clients, next hop their server; a router learns them and reaches the client; the route goes with the lease", async () => {
  const f = fences('README.md').find((x) => x.lang === 'conf' && x.lines.some((l) => l.text.includes('protocol bgp')));
  assert.ok(f, "README.md's bird2 configuration");
  const c1 = L.client('c1', 0, { only: true });
  const c2 = L.client('c2', 1, { only: true });
  await c1.proc.waitFor('ready', () => true, 20_000);
  await c2.proc.waitFor('ready', () => true, 20_000);
  await until("s1's route to c2", () => L.routes(s1).length === 1, 10_000);

  const router = L.clientHost('router');
  const routerIp = JSON.parse((await router.exec(['ip', '-j', '-4', 'addr', 'show', 'scope', 'global'])).stdout)[0].addr_info[0].local as string;
  const text = f!.lines.map((l) => l.text).join('\n');
  assert.match(text, /neighbor 192\.0\.2\.254 as 65000;/);
  bird(s1.host, 's1', text.replace('neighbor 192.0.2.254', `neighbor ${routerIp}`) + '\n');
  bird(
    router,
    'router',
    [
      'protocol device {}',
      'protocol kernel { ipv4 { import none; export all; }; }',
      `protocol bgp servers { local as 65000; neighbor ${s1.underlay} as 65001; ipv4 { import all; export none; }; }`,
      '',
    ].join('\n'),
  );

  const want = `${c2.address()} via ${s2.underlay} `;
  await until("the router to learn c2's route from s1", async () => (await learned(router)).some((l) => l.startsWith(want)), 30_000);
  const routes = await learned(router);
  assert.not.ok(
    routes.some((l) => l.startsWith(`${c1.address()} `)),
    `s1 does not announce its own client: ${routes.join('; ')}`,
  );
  assert.ok(await router.ping(c2.address(), 3), "the router reaches s2's client by the route s1 announced");

  // c2 leaves: s2 gives its lease back, s1's kernel route goes, bird withdraws it.
  await c2.proc.stop('SIGTERM', 5000);
  await until("s1's route to c2 to go", () => L.routes(s1).length === 0, 10_000);
  await until('the router to forget it', async () => !(await learned(router)).some((l) => l.startsWith(want)), 30_000);
});

test.run();
