// The internet-bound path in the bench's report (bench/report/): issue 15's targets judged
// against the raw path of the same run (and the same targets between two clients), the
// effect of TUN offloads off and on for both paths (old results without the `offload` field
// too), the tables of latest.md with the profiled run of the path, and the hub's NAT ruleset
// (bench/netlab.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../support/paths.js';
import { benchRun } from '../../support/bench-run.js';
import { markdown } from '../../../bench/report/markdown.js';
import { chart } from '../../../bench/report/chart.js';
import { internetTargets, judge, offloadOf, offloadPairs, oursWith } from '../../../bench/report/targets.js';
import { natRuleset } from '../../../bench/netlab.js';
import type { PathResult, TunResult } from '../../../bench/sections/tun.js';
import type { TunInternetResult } from '../../../bench/sections/tun-internet.js';

/** A path result with the fields the report reads; one sample. */
function path(id: string, kind: PathResult['kind'], mtu: number, gbps: number | null, extra: Partial<PathResult> = {}): PathResult {
  const sample = {
    gbps,
    retransmits: gbps === null ? null : 10,
    rtt: { median: 1, avg: 1, min: 0.5, p90: 2, count: 20, lost: 0 },
    rttAfter: { median: 0.5, avg: 0.5, min: 0.4, p90: 1, count: 20, lost: 0 },
    cpu: {},
    machine: null,
    background: null,
    quiet: null,
    tunDrops: { client1: { tx: 3, rx: 0 }, hub: { tx: 0, rx: 1 } },
  };
  return { id, label: id, kind, mtu, ...(kind === 'simplevpn' ? { transport: 'tcp' as const } : {}), ...sample, runs: [sample], ...extra };
}

function internet(paths: PathResult[], bestMtu = 65000): TunInternetResult {
  return { rounds: 1, seconds: 3, omit: 1, pings: 20, beyond: { addr: '198.18.3.2', subnet: '198.18.3.0/24', nat: natRuleset('veth3a') }, bestMtu, bestMtuFrom: 'tun', paths, notes: [] };
}

const base = () => benchRun({ sections: ['tun-internet'] });

const byId = (ts: ReturnType<typeof internetTargets>) => Object.fromEntries(ts.map((t) => [t.id, t]));

test('internet-bound targets: offloads on at 1500 against 30 % of raw, the best MTU against 50 %, off shown beside', () => {
  const t = internet([
    path('raw', 'raw', 1500, 10),
    path('simplevpn-1500', 'simplevpn', 1500, 1, { offload: false }),
    path('simplevpn-offload-1500', 'simplevpn', 1500, 3.5, { offload: true }),
    path('simplevpn-offload-65000', 'simplevpn', 65000, 4.9, { offload: true }),
  ]);
  const got = byId(internetTargets(t));
  assert.is(got['internet-1500'].status, 'met');
  assert.is(got['internet-1500'].ratio, '35.0 %');
  assert.match(got['internet-1500'].measured, '3.500 Gbit/s at MTU 1500 (without offloads 1.000 Gbit/s, 10.0 %) vs raw 10.000 Gbit/s');
  assert.is(got['internet-best'].status, 'missed');
  assert.is(got['internet-best'].ratio, '49.0 %');
  assert.match(got['internet-best'].measured, 'at MTU 65000');
  // The same numbers with the raw path faster: both missed, judged from this run only.
  t.paths[0] = path('raw', 'raw', 1500, 20);
  assert.equal(
    internetTargets(t).map((x) => x.status),
    ['missed', 'missed'],
  );
});

test('client-to-client targets of issue 15: --offload at 1500 against 30 % of raw, the best raised MTU against 50 %, beside issue 7\'s 25 %', () => {
  const t: TunResult = {
    rounds: 1,
    seconds: 3,
    omit: 1,
    pings: 20,
    paths: [
      path('raw', 'raw', 1500, 20),
      path('simplevpn-1500', 'simplevpn', 1500, 2, { offload: false }),
      path('simplevpn-offload-1500', 'simplevpn', 1500, 5.9, { offload: true }),
      path('simplevpn-65000', 'simplevpn', 65000, 9.4, { offload: false }),
    ],
    bestMtu: 65000,
    profiles: [],
    notes: [],
  };
  const got = byId(judge(benchRun({ sections: ['tun'], tun: t })));
  assert.is(got['tun-offload-1500'].status, 'missed');
  assert.is(got['tun-offload-1500'].ratio, '29.5 %');
  assert.match(got['tun-offload-1500'].measured, '5.900 Gbit/s at MTU 1500 (without offloads 2.000 Gbit/s, 10.0 %) vs raw 20.000 Gbit/s');
  assert.is(got['tun-best-mtu'].status, 'missed');
  assert.is(got['tun-best-mtu'].ratio, '47.0 %');
  assert.is(got['tun-raised-mtu'].status, 'met', 'the same transfer against 25 %');
  t.paths[2] = path('simplevpn-offload-1500', 'simplevpn', 1500, 6.1, { offload: true });
  t.paths[3] = path('simplevpn-65000', 'simplevpn', 65000, 10, { offload: false });
  const again = byId(judge(benchRun({ sections: ['tun'], tun: t })));
  assert.equal([again['tun-offload-1500'].status, again['tun-best-mtu'].status], ['met', 'met']);
  // No raised MTU in the run: said, not judged.
  t.bestMtu = null;
  assert.is(byId(judge(benchRun({ sections: ['tun'], tun: t })))['tun-best-mtu'].status, 'not measured');
  assert.is(byId(judge(benchRun({})))['tun-offload-1500'].measured, 'section not run');
});

test('internet-bound targets: the best MTU is the one the section measured, and 1500 when that is all there is', () => {
  const paths = [path('raw', 'raw', 1500, 10), path('simplevpn-offload-1500', 'simplevpn', 1500, 6, { offload: true }), path('simplevpn-offload-16000', 'simplevpn', 16000, 4, { offload: true })];
  assert.is(byId(internetTargets(internet(paths, 16000)))['internet-best'].ratio, '40.0 %');
  assert.is(byId(internetTargets(internet(paths, 1500)))['internet-best'].ratio, '60.0 %');
});

test('internet-bound targets say why they were not measured', () => {
  assert.equal(
    internetTargets(undefined).map((t) => [t.status, t.measured]),
    [
      ['not measured', 'section not run'],
      ['not measured', 'section not run'],
    ],
  );
  const noRaw = internetTargets(internet([path('raw', 'raw', 1500, null, { error: 'iperf3: boom\nmore' }), path('simplevpn-offload-1500', 'simplevpn', 1500, 3, { offload: true })]));
  assert.is(noRaw[0].status, 'not measured');
  assert.is(noRaw[0].measured, 'iperf3: boom');
  const failed = internetTargets(internet([path('raw', 'raw', 1500, 10), path('simplevpn-offload-1500', 'simplevpn', 1500, null, { offload: true, error: 'no ready' })]));
  assert.equal(
    failed.map((t) => [t.status, t.measured]),
    [
      ['not measured', 'no ready'],
      ['not measured', 'not measured'],
    ],
  );
});

test('offloads off and on: by the field, or by the id in results from before it', () => {
  const old = path('simplevpn-offload-1500', 'simplevpn', 1500, 2);
  const plain = path('simplevpn-1500', 'simplevpn', 1500, 1);
  assert.is(offloadOf(old), true);
  assert.is(offloadOf(plain), false);
  assert.is(oursWith([old, plain], 1500, false), plain);
  assert.is(oursWith([old, plain], 1500, true), old);
  assert.is(oursWith([old, plain], null, true), undefined);
  // Another transport at the same MTU is not the pair.
  assert.is(oursWith([path('simplevpn-ws-1500', 'simplevpn', 1500, 1, { transport: 'ws' })], 1500, false), undefined);
});

test('the effect of offloads: one pair per path that measured both, client to client first', () => {
  const tun = { paths: [path('raw', 'raw', 1500, 10), path('simplevpn-1500', 'simplevpn', 1500, 1), path('simplevpn-offload-1500', 'simplevpn', 1500, 2)] } as TunResult;
  const inet = internet([path('raw', 'raw', 1500, 10), path('simplevpn-1500', 'simplevpn', 1500, 1.5, { offload: false }), path('simplevpn-offload-1500', 'simplevpn', 1500, 3, { offload: true })]);
  const pairs = offloadPairs({ tun, 'tun-internet': inet });
  assert.equal(
    pairs.map((p) => [p.path, p.off.gbps, p.on.gbps]),
    [
      ['client to client', 1, 2],
      ['internet-bound', 1.5, 3],
    ],
  );
  assert.equal(offloadPairs({ 'tun-internet': internet([path('simplevpn-1500', 'simplevpn', 1500, 1, { offload: false })]) }), []);
});

test('latest.md: the internet-bound table, its NAT rules, the offload pairs and the targets', () => {
  const r = base();
  r['tun-internet'] = internet([
    path('raw', 'raw', 1500, 10),
    path('wireguard-go', 'wireguard-go', 1420, 0.8),
    path('simplevpn-1500', 'simplevpn', 1500, 1, { offload: false }),
    path('simplevpn-offload-1500', 'simplevpn', 1500, 4, { offload: true }),
    path('simplevpn-offload-65000', 'simplevpn', 65000, 5, { offload: true }),
  ]);
  const md = markdown({ ...r, targets: judge(r) });
  assert.match(md, '## 1b. Through TUN to a host beyond the server (internet-bound)');
  assert.match(md, `oifname "veth3a" masquerade`);
  // Each path against raw and against ours with offloads at 1500 and at 65000.
  assert.match(md, '| wireguard-go | 1420 | 0.800 | 8 % | 5.00x | 6.25x |');
  assert.match(md, '| internet-bound | 1.000 | 4.000 | 4.00x | 1.000 / 1.000 | 0.500 / 0.500 | 10 / 10 | 4 / 4 |');
  assert.match(md, '| ✅ met | through TUN, internet-bound | MTU 1500 with TUN offloads: at least 30 % of the raw path |');
  assert.match(md, '| ✅ met | through TUN, internet-bound | best MTU with TUN offloads: at least 50 % of the raw path |');
});

test('latest.md: the profiled internet-bound run under Profiles, perf rows named by program, and no such heading without one', () => {
  const r = base();
  const t = internet([path('raw', 'raw', 1500, 10), path('simplevpn-offload-65000', 'simplevpn', 65000, 5, { offload: true })]);
  r['tun-internet'] = t;
  assert.not.match(markdown({ ...r, targets: judge(r) }), '## Profiles', 'results from before the profiled run');
  t.profiles = [
    {
      mtu: 65000,
      gbps: 4.25,
      processes: {},
      perf: {
        seconds: 4,
        byProcess: [{ pct: 33.8, who: 'simplevpn client1', what: '[kernel.kallsyms]' }],
        bySymbol: [{ pct: 5.7, who: 'simplevpn client1', what: '[k] _copy_from_iter' }],
      },
    },
  ];
  const md = markdown({ ...r, targets: judge(r) });
  assert.match(md, '### Through TUN to the host beyond the server, with TUN offloads, at MTU 65000 (4.250 Gbit/s under the profilers)');
  assert.match(md, '| 33.8 | simplevpn client1 | [kernel.kallsyms] |');
  assert.match(md, '| 5.7 | simplevpn client1 | `[k] _copy_from_iter` |');
});

test('latest.md: the TCP congestion control of the bench\'s namespaces beside this machine\'s, and nothing about it in results from before', () => {
  const r = base();
  r.machine = { ...r.machine, tcp: { host: 'bbr', namespaces: 'cubic' } };
  assert.match(markdown({ ...r, targets: judge(r) }), '; TCP congestion control cubic in the bench\'s namespaces (this machine\'s: bbr). ');
  const old = base();
  assert.not.match(markdown({ ...old, targets: judge(old) }), 'congestion control');
});

test('latest.svg: a panel for the internet-bound path, its targets drawn at 30 % and 50 % of its raw path', () => {
  const r = base();
  r['tun-internet'] = internet([path('raw', 'raw', 1500, 10), path('simplevpn-offload-1500', 'simplevpn', 1500, 4, { offload: true })]);
  const svg = chart({ ...r, targets: judge(r) });
  assert.match(svg, '1b. Through TUN to a host beyond the server');
  assert.match(svg, '>simplevpn-offload-1500</text>');
  assert.match(svg, '>4.00 Gbit/s</text>');
  // The two target lines sit where 3 and 5 Gbit/s fall on the panel's log axis (1 to 100
  // Gbit/s, the decade above the raw path's 10 included, over the plot's 520 px from x = 300).
  const lines = [...svg.matchAll(/<line x1="([\d.]+)"[^>]*class="target"\/>/g)].map((m) => Number(m[1]));
  assert.equal(lines, [300 + (Math.log10(3) / 2) * 520, 300 + (Math.log10(5) / 2) * 520].map((v) => Number(v.toFixed(1))));
  assert.match(svg, 'target @1500: 30 % of raw');
  assert.match(svg, 'target best MTU: 50 % of raw');
  // Without the section, no panel.
  assert.not.match(chart({ ...base(), targets: [] }), '1b. Through TUN');
});

test('the NAT ruleset masquerades what leaves the given device, in a table of its own, as docs/performance.md prints it', () => {
  const rules = natRuleset('veth9a');
  assert.match(rules, /^table ip \w+ \{ chain postrouting \{ type nat hook postrouting priority srcnat; policy accept; oifname "veth9a" masquerade; \}; \}$/);
  // The hub's end of its third link, as the bench names it (the lab's veth3a).
  assert.ok(readFileSync(join(ROOT, 'docs/performance.md'), 'utf8').includes(`nft '${natRuleset('veth3a')}'`), 'docs/performance.md shows the rule the bench applies');
});

test.run();
