// README's GRE link between servers, as printed, as the underlay of two simplevpn servers on
// one etcd: each server's address on the tunnel is its --cluster-advertise, so its routes to
// the other's clients go into the tunnel, and packets between clients of the two servers
// cross it (its counters say so). The servers' public addresses are the README's
// (203.0.113.1, 198.51.100.2), each alone on its side and reached through the lab's bridge.
// Topology otherwise: test/support/cluster-lab.ts.
import { spawnSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ClusterLab, type ClusterServer, clusterUnavailable } from '../../support/cluster-lab.js';
import { until } from '../../support/lab.js';
import { SHELL_LANGS, fences } from '../doc-commands.js';

/** Why this kernel cannot make a GRE device (some VMs' kernels are built without it), or null. */
function greUnavailable(): string | null {
  const ns = `svpn-gre-probe-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', ns], { timeout: 5000 }).status !== 0) return 'cannot make a network namespace';
  try {
    const r = spawnSync('ip', ['-n', ns, 'link', 'add', 'probe', 'type', 'gre', 'local', '192.0.2.1', 'remote', '192.0.2.2'], { encoding: 'utf8', timeout: 5000 });
    return r.status === 0 ? null : `this kernel has no GRE (ip link add type gre: ${r.stderr.trim()})`;
  } finally {
    spawnSync('ip', ['netns', 'del', ns], { timeout: 5000 });
  }
}

const skip = clusterUnavailable() ?? greUnavailable();
const it = skip ? test.skip : test;
if (skip) console.log(`cluster over GRE: skipped: ${skip}`);

let L: ClusterLab;
let s1: ClusterServer, s2: ClusterServer;

if (!skip) {
  test.before(() => {
    L = new ClusterLab(2);
    [s1, s2] = L.servers as [ClusterServer, ClusterServer];
  });
  test.after(async () => {
    await L?.destroy();
  });
}

/** The tunnel's packet counters on `s`. */
async function counters(s: ClusterServer, dev: string): Promise<{ tx: number; rx: number }> {
  const r = await s.host.exec(['ip', '-s', '-j', 'link', 'show', dev]);
  assert.is(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout)[0].stats64;
  return { tx: st.tx.packets, rx: st.rx.packets };
}

it("README's GRE lines, as printed on server 1 and mirrored on server 2, carry the cluster's routes: ping between their clients crosses the tunnel", async () => {
  const f = fences('README.md').find((x) => SHELL_LANGS.has(x.lang) && x.lines.some((l) => l.text.includes('type gre')));
  assert.ok(f, 'the GRE lines in README.md');
  const one = f!.lines.map((l) => l.text.trim()).filter((t) => t && !t.startsWith('#'));
  assert.is(one.length, 3);
  // Server 2's lines, as the README says to change them.
  const two = one.map((l) =>
    l
      .replace('svpn-gre2', 'svpn-gre1')
      .replace('local 203.0.113.1 remote 198.51.100.2', 'local 198.51.100.2 remote 203.0.113.1')
      .replace('172.30.0.1 peer 172.30.0.2', '172.30.0.2 peer 172.30.0.1'),
  );
  assert.ok(two.every((l, i) => l !== one[i]), 'each line changes for server 2');
  for (const [s, mine, peer] of [
    [s1, '203.0.113.1', '198.51.100.2'],
    [s2, '198.51.100.2', '203.0.113.1'],
  ] as const) {
    assert.is((await s.host.exec(['ip', 'addr', 'add', `${mine}/32`, 'dev', s.underlayDev])).code, 0);
    assert.is((await s.host.exec(['ip', 'route', 'add', `${peer}/32`, 'dev', s.underlayDev])).code, 0);
  }
  for (const [s, lines] of [
    [s1, one],
    [s2, two],
  ] as const) {
    for (const line of lines) {
      const r = await s.host.exec(['bash', '-c', line]);
      assert.is(r.code, 0, `${s.name}: ${line}: ${r.stderr}`);
    }
  }
  assert.ok(await s1.host.ping('172.30.0.2', 2), 'the servers are neighbours over GRE');

  s1.advertise = '172.30.0.1';
  s2.advertise = '172.30.0.2';
  await L.startAll();
  const c1 = L.client('c1', 0, { only: true });
  const c2 = L.client('c2', 1, { only: true });
  await c1.proc.waitFor('ready', () => true, 20_000);
  await c2.proc.waitFor('ready', () => true, 20_000);
  await until('each server to route the other\'s client into the tunnel', () => L.routes(s1).length === 1 && L.routes(s2).length === 1, 10_000);
  assert.match(L.routes(s1)[0]!, new RegExp(`^${c2.address().replace(/\./g, '\\.')} via 172\\.30\\.0\\.2 dev svpn-gre2 `));
  assert.match(L.routes(s2)[0]!, new RegExp(`^${c1.address().replace(/\./g, '\\.')} via 172\\.30\\.0\\.1 dev svpn-gre1 `));

  const before = await counters(s1, 'svpn-gre2');
  assert.ok(await c1.host.ping(c2.address(), 5), 'c1 (s1) -> c2 (s2)');
  assert.ok(await c2.host.ping(c1.address(), 5), 'c2 (s2) -> c1 (s1)');
  const after = await counters(s1, 'svpn-gre2');
  // Ten echo requests and ten replies each way of s1's tunnel, at least.
  assert.ok(after.tx - before.tx >= 10, `sent into the tunnel: ${after.tx - before.tx}`);
  assert.ok(after.rx - before.rx >= 10, `received from the tunnel: ${after.rx - before.rx}`);
});

test.run();
