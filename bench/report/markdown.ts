// bench/results/latest.md: the targets, a table per section, the profiles, the tools and the
// notes of one run, drawn from its results alone (so that --render can redraw it).

import type { ProfileSummary } from '../probes/cpuprofile.js';
import type { PerfSummary } from '../probes/perf.js';
import type { ClusterResult } from '../sections/cluster.js';
import type { Tun6Result } from '../sections/tun6.js';
import type { HardeningResult } from '../sections/hardening.js';
import type { Burst, ScaleResult } from '../sections/scale.js';
import { SECTIONS } from '../sections/section.js';
import type { SdkResult } from '../sections/sdk.js';
import type { SwitchResult } from '../sections/switch.js';
import type { PathResult, ProfileRun, TunResult } from '../sections/tun.js';
import type { OursTransport } from '../sections/tun-paths.js';
import type { TunInternetResult } from '../sections/tun-internet.js';
import { fmt } from '../util.js';
import type { BenchResults } from './schema.js';
import { offloadPairs, oursAt, oursWith, rawPath, switchCase, transportOf, transportPairs } from './targets.js';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${Math.round(x * 100)} %`);

/** A failed row's name: the label, then the first line of the error, cut short. */
const failed = (label: string, error: string) => `${label} — **failed**: ${error.split('\n')[0].slice(0, 160)}`;

/** The server's drops during the transfer, as a note after the retransmits. */
function serverDrops(p: PathResult): string {
  const d = p.server?.drops;
  let out = '';
  if (p.server && d) {
    const n = Object.values(d).reduce((a, b) => a + b, 0);
    out += n ? ` <sub>server dropped ${n} of ${p.server.received} (${Object.entries(d).map(([k, v]) => `${k} ${v}`).join(', ')})</sub>` : ' <sub>server dropped none</sub>';
  }
  for (const [role, c] of Object.entries(p.clients ?? {})) if (c.socket + c.tun) out += ` <sub>${role} dropped ${c.socket} (socket full), ${c.tun} (tun full)</sub>`;
  for (const [role, c] of Object.entries(p.tunDrops ?? {})) if (c.tx + c.rx) out += ` <sub>${role}'s tun device dropped ${c.tx} tx, ${c.rx} rx</sub>`;
  return out;
}

function cpuText(c: Record<string, { total: number } | null>): string {
  return (
    Object.entries(c)
      .map(([k, v]) => `${k} ${pct(v?.total)}`)
      .join(', ') || '—'
  );
}

/** How the path sections measure, after what each measures. */
const measuredAs = (t: { seconds: number; omit: number; rounds: number; pings: number }) =>
  `${t.seconds} s per transfer after ${t.omit} s omitted; ` +
  `best of ${t.rounds} interleaved round${t.rounds > 1 ? 's' : ''}. RTT: ping, ${t.pings} echoes 50 ms apart, median of the quietest round, once right after the tunnel came up and once after the transfer. ` +
  `CPU: share of one core of each program of the path during the transfer; "others": processes outside the bench meanwhile.`;

/** The table of paths: each against the raw path and two of ours (`o1500` and `ob`, named in the header). */
function pathTable(paths: PathResult[], raw: PathResult | undefined, o1500: PathResult | undefined, ob: PathResult | undefined, names = ['ours @1500', 'ours @best']): string[] {
  const L = [
    `| path | tunnel MTU | Gbit/s | of raw | ${names[0]} ÷ this | ${names[1]} ÷ this | RTT median (p90) ms, fresh tunnel | RTT median (p90) ms, after the transfer | CPU during transfer | iperf3 retransmits | machine busy | others |`,
    '|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|',
  ];
  for (const p of paths) {
    const g = p.gbps;
    const ofRaw = g !== null && raw ? pct(g / raw.gbps!) : 'n/a';
    const r1 = g !== null && o1500?.gbps ? fmt(o1500.gbps / g) + 'x' : 'n/a';
    const rb = g !== null && ob?.gbps ? fmt(ob.gbps / g) + 'x' : 'n/a';
    const rtt = p.rtt ? `${fmt(p.rtt.median, 3)} (${fmt(p.rtt.p90, 3)})` : 'n/a';
    const rttAfter = p.rttAfter ? `${fmt(p.rttAfter.median, 3)} (${fmt(p.rttAfter.p90, 3)})` : 'n/a';
    const runs = p.runs.length > 1 ? ` <sub>(${p.runs.map((x) => fmt(x.gbps, 2)).join(' / ')})</sub>` : '';
    const name = p.error ? failed(p.label, p.error) : p.label;
    L.push(
      `| ${name} | ${p.mtu} | ${fmt(g, 3)}${runs} | ${ofRaw} | ${r1} | ${rb} | ${rtt} | ${rttAfter} | ${cpuText(p.cpu)} | ${p.retransmits ?? 'n/a'}${serverDrops(p)} | ${pct(p.machine?.busy)} | ${p.background ? fmt(p.background.cores, 2) + ' cores' : 'n/a'} |`,
    );
  }
  return L;
}

function tunSection(t: TunResult): string[] {
  const L: string[] = [];
  const ob = oursAt(t, t.bestMtu);
  L.push('', '## 1. Through TUN', '', `iperf3, one TCP stream, client 1 → hub → client 2 between network namespaces on veth links (MTU 1500), ${measuredAs(t)}`, '');
  L.push(...pathTable(t.paths, rawPath(t), oursAt(t, 1500), ob));
  if (t.bestMtu) L.push('', `Best raised tunnel MTU in this run: **${t.bestMtu}** (${fmt(ob?.gbps, 3)} Gbit/s).`);
  L.push(...transports(t));
  for (const n of t.notes) L.push('', `Note: ${n}`);
  return L;
}

/** Issue 15: from a client through the server to a host beyond it, each path against the raw one to that host. */
function internetSection(t: TunInternetResult): string[] {
  const from = t.bestMtuFrom === 'tun' ? "the TUN section's best in this run" : 'what the Linux client asks for: the TUN section found none before it in this run';
  const L = [
    '',
    '## 1b. Through TUN to a host beyond the server (internet-bound)',
    '',
    `iperf3, one TCP stream, client 1 → hub (the VPN server) → a host beyond it on a link of its own (${t.beyond.addr}, subnet ${t.beyond.subnet}), ` +
      `the hub's kernel routing what leaves each VPN's tun and masquerading it: \`nft '${t.beyond.nat}'\` in the hub. The host beyond has no route but its own subnet, ` +
      `so every reply goes back through the NAT. Each VPN routes the subnet into its tunnel (simplevpn: the server's \`--route\`; OpenVPN: a pushed route; wireguard-go: AllowedIPs and \`ip route\`). ` +
      `Raised tunnel MTU: ${t.bestMtu} (${from}). ${measuredAs(t)} Tun drops: client 1's and the hub's tun devices.`,
    '',
    ...pathTable(t.paths, rawPath(t), oursWith(t.paths, 1500, true), oursWith(t.paths, t.bestMtu, true), ['ours @1500 with offloads', `ours @${t.bestMtu}`]),
  ];
  for (const n of t.notes) L.push('', `Note: ${n}`);
  return L;
}

/** The effect of TUN offloads at tunnel MTU 1500, off then on, on each path that measured both. */
function offloadEffect(r: BenchResults): string[] {
  const pairs = offloadPairs(r);
  if (!pairs.length) return [];
  const drops = (p: PathResult) => Object.values(p.tunDrops ?? {}).reduce((a, d) => a + d.tx + d.rx, 0);
  const rtt = (a: PathResult['rtt'] | undefined, b: PathResult['rtt'] | undefined) => `${fmt(a?.median, 3)} / ${fmt(b?.median, 3)}`;
  const L = [
    '',
    '### Effect of TUN offloads (simplevpn, tunnel MTU 1500)',
    '',
    "Client to client: both clients with `--offload` or neither (the server's tun is not on that path). Internet-bound: client 1 with `--offload` and the server's tun with offloads (its default), or neither (`SIMPLEVPN_TUN_OFFLOAD=0`).",
    '',
    '| path | offloads off, Gbit/s | on, Gbit/s | on ÷ off | RTT median ms, fresh: off / on | after the transfer: off / on | iperf3 retransmits: off / on | tun devices dropped: off / on |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const { path, off, on } of pairs) {
    const ratio = off.gbps && on.gbps !== null ? `${fmt(on.gbps / off.gbps)}x` : 'n/a';
    L.push(`| ${path} | ${fmt(off.gbps, 3)} | ${fmt(on.gbps, 3)} | ${ratio} | ${rtt(off.rtt, on.rtt)} | ${rtt(off.rttAfter, on.rttAfter)} | ${off.retransmits ?? 'n/a'} / ${on.retransmits ?? 'n/a'} | ${drops(off)} / ${drops(on)} |`);
  }
  return L;
}

/** Issue 13: simplevpn over the other transports against plain tcp at the same MTU, and each
 * WebSocket against the transport under it (ws: tcp, wss: tls). */
function transports(t: TunResult): string[] {
  const names: Record<OursTransport, string> = { tcp: 'plain tcp', tls: 'tls', ws: 'ws', wss: 'wss', 'tcp-proxy': 'tcp through the HTTP proxy' };
  const measured = t.paths.some((p) => p.kind === 'simplevpn' && transportOf(p) !== 'tcp');
  if (!measured) return [];
  const L = [
    '',
    'simplevpn over the other transports, each against a reference at the same tunnel MTU in this run. tls: the clients dial `tls://HUB:2003` (TLS with a throwaway EC P-256 ' +
      'certificate, `--ca`); wss: `wss://HUB:2003/` (the same TLS, a WebSocket inside); ws: `ws://HUB:2002/` (a WebSocket, no TLS). HTTP proxy: tinyproxy in the hub, ' +
      "the clients' plain tcp in its CONNECT tunnel to the server's port 2002 (`--proxy http://HUB:3128`). ws against plain tcp and wss against tls differ by the WebSocket alone.",
    '',
    '| transport | tunnel MTU | Gbit/s | against | its Gbit/s | share | RTT median ms, fresh: this / against | RTT median ms, after the transfer: this / against |',
    '|---|--:|--:|---|--:|--:|--:|--:|',
  ];
  const pairs: Array<[OursTransport, OursTransport]> = [['ws', 'tcp'], ['wss', 'tls'], ['tls', 'tcp'], ['wss', 'tcp'], ['tcp-proxy', 'tcp']];
  for (const [tr, base] of pairs) {
    for (const { mtu, via, tcp } of transportPairs(t, tr, base).reverse()) {
      const rtt = (a: PathResult['rtt'] | undefined, b: PathResult['rtt'] | undefined) => `${fmt(a?.median, 3)} / ${fmt(b?.median, 3)}`;
      L.push(`| ${names[tr]} | ${mtu} | ${fmt(via.gbps, 3)} | ${names[base]} | ${fmt(tcp.gbps, 3)} | ${pct(via.gbps! / tcp.gbps!)} | ${rtt(via.rtt, tcp.rtt)} | ${rtt(via.rttAfter, tcp.rttAfter)} |`);
    }
  }
  return L;
}

function switchSection(s: SwitchResult): string[] {
  const L: string[] = [
    '',
    '## 2. Switching alone (no TUN)',
    '',
    `One sender and one receiver process over loopback${s.isolated ? ' (in a network namespace of their own)' : ''}; the server alone in its process. ` +
      `Best of ${s.rounds} interleaved round${s.rounds > 1 ? 's' : ''}; ${s.cases[0]?.seconds ?? '?'} s measured after warm-up. Reference: a plain node:net relay that pipes one socket into the other.`,
    '',
    '| server | packet | delivered Gbit/s | delivered Mpps | sent Gbit/s | server CPU (user+sys) | server ns/packet | sender CPU | receiver CPU | machine busy | others | ours ÷ relay |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const c of s.cases) {
    const ref = c.mode === 'simplevpn' ? switchCase(s, 'relay', c.size) : undefined;
    const ratio = ref && !c.error ? `${fmt(c.gbps / ref.gbps)}x` : '';
    const cpu = c.cpu.server ? `${pct(c.cpu.server.total)} (${pct(c.cpu.server.user)}+${pct(c.cpu.server.sys)})` : 'n/a';
    const drops = c.drops && Object.keys(c.drops).length ? ` <sub>drops: ${Object.entries(c.drops).map(([k, v]) => `${k} ${v}`).join(', ')}</sub>` : '';
    const name = c.error ? failed(c.mode, c.error) : c.mode === 'relay' ? 'TCP relay (reference)' : 'simplevpn';
    L.push(
      `| ${name} | ${c.size} B | ${fmt(c.gbps, 2)} | ${fmt(c.mpps, 3)} | ${fmt(c.sentGbps, 2)}${drops} | ${cpu} | ${fmt(c.serverNsPerPacket, 0)} | ${pct(c.cpu.sender?.total)} | ${pct(c.cpu.receiver?.total)} | ${pct(c.machine?.busy)} | ${c.background ? fmt(c.background.cores, 2) : 'n/a'} | ${ratio} |`,
    );
  }
  return L;
}

function scaleSection(sc: ScaleResult): string[] {
  const L: string[] = ['', '## 3. Scale', ''];
  if (sc.error) L.push(`**Failed:** ${sc.error}`, '');
  if (sc.capped) L.push(`**Fewer clients than asked for:** ${sc.capped}`, '');
  L.push(
    `${sc.clients} clients from ${sc.processes} processes, each client from a loopback source address of its own${sc.isolated ? ', in a network namespace of their own' : ''}; ` +
      `at most ${sc.window} waiting for a reply per process.`,
    '',
    '| measure | value |',
    '|---|--:|',
    `| clients that got an address | ${sc.assigned} of ${sc.clients}${sc.failed ? ` (${sc.failed} failed: ${JSON.stringify(sc.errors)})` : ''} |`,
    `| assignments per second (first connect to last reply, two waves of half the clients) | ${sc.assignmentsPerSecond ?? 'n/a'} (${fmt(sc.assignSeconds, 2)} s) |`,
    `| server CPU while assigning | ${pct(sc.assignCpu)} of a core |`,
  );
  if (sc.hold) L.push(`| clients still connected after ${sc.hold.seconds} s idle (keepalive every ${sc.hold.keepalive} s) | ${sc.hold.open} (${sc.hold.echoes} keepalive echoes) |`, `| server CPU while idle | ${pct(sc.hold.serverCpu)} of a core |`);
  const m = sc.memory;
  if (m) {
    const mb = (x: number) => (x / 1048576).toFixed(1) + ' MiB';
    L.push(
      `| server RSS before → after (after a full GC) | ${mb(m.before.rss)} → ${mb(m.after.rss)} |`,
      `| server JS heap before → after | ${mb(m.before.heapUsed)} → ${mb(m.after.heapUsed)} |`,
      `| **RSS per client** | **${m.rssPerClient} B** |`,
      `| JS heap per client (used; reserved: ${m.heapTotalPerClient} B) | ${m.heapPerClient} B |`,
      `| marginal cost of a client (second half of the clients only): RSS, JS heap | ${m.marginalRssPerClient ?? 'n/a'} B, ${m.marginalHeapPerClient ?? 'n/a'} B |`,
      `| off-heap (external) per client | ${m.externalPerClient} B |`,
    );
  }
  const ref = sc.reference;
  if (ref && !ref.error)
    L.push(
      `| reference: a bare node:net server holding the same clients (bench/fixtures/floor-server.ts), RSS and JS heap per client | ${ref.rssPerClient} B, ${ref.heapPerClient} B |`,
      `| what simplevpn adds per client above that floor: RSS, JS heap | ${m ? m.rssPerClient - ref.rssPerClient : 'n/a'} B, ${m ? m.heapPerClient - ref.heapPerClient : 'n/a'} B |`,
    );
  else if (ref?.error) L.push(`| reference (bare node:net server) | failed: ${ref.error.split('\n')[0]} |`);
  if (ref && !ref.error) L.push(`| reference: assignments per second the bare node:net server answered (the same clients, all at once) | ${ref.assignmentsPerSecond ?? 'n/a'} |`);
  const nb = sc.native;
  if (nb) {
    const cell = (b: Burst | undefined) => (b ? `${b.assignmentsPerSecond ?? 'n/a'}/s, ${b.serverCpuUs ?? 'n/a'} µs (server ${pct(b.serverCpu)}, generator ${pct(b.generatorCpu)} of a core)${b.failed ? `, ${b.failed} failed` : ''}` : 'n/a');
    if (nb.error) L.push(`| C generator (bench/fixtures/connect-burst.c) | ${nb.error.split('\n')[0]} |`);
    nb.server.forEach((b, i) =>
      L.push(
        `| C generator (bench/fixtures/connect-burst.c), ${nb.clients} clients at once, at most ${nb.window} waiting, round ${i + 1}: assignments/s and server CPU per assignment, simplevpn | ${cell(b)} |`,
        `| the same, bare node:net server | ${cell(nb.floor[i])} |`,
      ),
    );
  }
  if (sc.background) L.push(`| others (processes outside the bench) while assigning | ${fmt(sc.background.cores, 2)} cores |`);
  const hp = m?.heap;
  if (hp) {
    L.push('', `What the JS heap holds per client (heap snapshots before and after, ${hp.total} B in all; self sizes):`, '', '| objects per client | bytes per client | constructor or kind |', '|--:|--:|---|');
    for (const g of hp.groups) L.push(`| ${g.count} | ${g.bytes} | \`${g.name}\` |`);
  }
  return L;
}

function sdkSection(k: SdkResult): string[] {
  const L: string[] = ['', '## 4. The SDK', ''];
  if (k.error) L.push(`**Failed:** ${k.error}`, '');
  L.push('| bundle | raw bytes | gzip -9 bytes |', '|---|--:|--:|');
  for (const b of k.bundles) L.push(`| ${b.file} | ${b.raw} | ${b.gzip} |`);
  if (k.framer && k.receive && k.send) {
    L.push(
      '',
      `Packet mix: ${k.mix?.sizes} (${k.mix?.packets} packets, ${k.mix?.bytes} bytes), delivered in ${k.mix?.chunk}-byte chunks.`,
      '',
      '| path | ns/packet | heap bytes allocated per packet | ArrayBuffer bytes per packet |',
      '|---|--:|--:|--:|',
      `| Framer.push/next | ${k.framer.nsPerPacket} | ${k.framer.heapBytesPerPacket} | ${k.framer.bufferBytesPerPacket} |`,
      `| Client receive path (onData → Tun.write) | ${k.receive.nsPerPacket} | ${k.receive.heapBytesPerPacket} | ${k.receive.bufferBytesPerPacket} |`,
      ...(k.receiveAligned ? [`| Client receive path, chunks of whole packets | ${k.receiveAligned.nsPerPacket} | ${k.receiveAligned.heapBytesPerPacket} | ${k.receiveAligned.bufferBytesPerPacket} |`] : []),
      `| Client.send | ${k.send.nsPerPacket} | ${k.send.heapBytesPerPacket} | ${k.send.bufferBytesPerPacket} |`,
      `| calibration: one \`subarray()\` per operation | | ${k.calibration?.heapBytesPerPacket} | ${k.calibration?.bufferBytesPerPacket} |`,
    );
  }
  return L;
}

function hardeningSection(h: HardeningResult): string[] {
  const L: string[] = ['', '## 5. Hardening (issue 12)', ''];
  const mb = (b: number) => fmt(b / 1048576, 1);
  L.push(
    'The server alone in its process on loopback, with its defaults. Partial frames: each connection sends the first 4 bytes of an IPv4 header declaring 65,535 bytes, then nothing; RSS after a full GC.',
    '',
    '| server | connections | RSS before (MB) | with them | after they closed | per connection | JS heap per connection |',
    '|---|--:|--:|--:|--:|--:|--:|',
  );
  for (const [name, p] of [['simplevpn', h.partial], ['bare node:net server (the floor)', h.floor]] as const)
    if (p) L.push(`| ${name} | ${p.opened} | ${mb(p.baseline)} | ${mb(p.held)} | ${mb(p.after)} | ${p.rssPerConn} B | ${p.heapPerConn} B |`);
  const g = h.guessing;
  if (g) {
    L.push(
      '',
      `Guessing: ${g.attack.conns} connections from ${g.attack.sources} loopback addresses, each guessing again 100 ms after its answer, for ${g.attack.seconds} s: ${g.attack.tries} guesses (${Math.round(g.attack.tries / g.attack.seconds)}/s), ` +
        `answered ${Object.entries(g.attack.answers).map(([k, v]) => `code ${k}: ${v}`).join(', ')}; the server refused ${Object.entries(g.refusals).map(([k, v]) => `${k} ${v}`).join(', ')}; ${g.checksPerSecond} scrypt checks/s.`,
      '',
      '| client | logins | got in | median ms | max ms |',
      '|---|--:|--:|--:|--:|',
      `| verified before the attack | ${g.known.tries} | ${g.known.granted} | ${g.known.medianMs} | ${g.known.maxMs} |`,
      `| never seen before | ${g.fresh.tries} | ${g.fresh.granted} | ${g.fresh.medianMs} | ${g.fresh.maxMs} |`,
    );
  }
  for (const e of h.errors) L.push('', `**Failed:** ${e.split('\n')[0]}`);
  return L;
}

function clusterSection(c: ClusterResult): string[] {
  const L: string[] = ['', '## 6. Cluster (issue 14)', ''];
  L.push(
    `Three servers (tun devices, kernel routes) on one etcd node, in network namespaces; ${c.clients} clients, a third on each server, all at once (bench/sections/cluster.ts).`,
    '',
    '| measure | value |',
    '|---|--:|',
    `| clients that got an address (each lease a transaction in etcd) | ${c.assigned} of ${c.clients}${c.failed ? ` (${c.failed} failed: ${JSON.stringify(c.errors)})` : ''} |`,
    `| assignments per second through etcd | ${c.assignmentsPerSecond ?? 'n/a'} (${c.assignSeconds?.toFixed(2) ?? 'n/a'} s) |`,
    `| every server routes every other server's clients, after the last reply | ${c.routesConvergedMs ?? 'n/a'} ms |`,
  );
  const f = c.failover;
  if (f) L.push(`| kill -9 of a server holding ${f.killedHeld}: no route via it on the others (its etcd lease expires: --etcd-ttl ${f.etcdTtl}) | ${f.routesGoneMs ?? 'not within the bound'} ms |`);
  if (Object.keys(c.trouble ?? {}).length) L.push('', `The servers logged: ${Object.entries(c.trouble).map(([k, v]) => `${k} ${v}`).join(', ')}.`);
  if (c.error) L.push('', `**Failed:** ${c.error.split('\n')[0]}`);
  return L;
}

function tun6Section(t: Tun6Result): string[] {
  const L: string[] = ['', '## 7. IPv6 through TUN (issue 17)', ''];
  L.push(
    `The star of section 1 (client → hub → client, network namespaces), simplevpn with --subnet6: one iperf3 TCP stream (${t.seconds} s) and ping between the clients' IPv6 addresses, and the same over their IPv4 addresses in the same bring-up (bench/sections/tun6.ts).`,
    '',
    '| MTU | family | Gbit/s | retransmits | ping median ms |',
    '|--:|---|--:|--:|--:|',
  );
  for (const x of t.samples) L.push(`| ${x.mtu} | ${x.family === 'ipv6' ? 'IPv6' : 'IPv4'} | ${x.gbps === null ? 'failed' : fmt(x.gbps, 3)} | ${x.retransmits ?? 'n/a'} | ${x.rttMs ?? 'n/a'} |`);
  for (const x of t.samples) if (x.error) L.push('', `**MTU ${x.mtu} ${x.family} failed:** ${x.error.split('\n')[0]}`);
  for (const e of t.errors) L.push('', `**Failed:** ${e.split('\n')[0]}`);
  return L;
}

/** A CPU profile summary (probes/cpuprofile.ts) as a table; the profile reader prints it too. */
export function profileMarkdown(title: string, s: ProfileSummary): string {
  const k = s.kinds;
  const out = [
    `**${title}** — busy ${s.busyMs} ms of ${s.wallMs} ms profiled (the process's whole life); of busy time: ` +
      `our JS ${k.app} %, Node's JS ${k.node} %, native bindings (system calls included) ${k.native} %, VM/other ${k.program} %, GC ${k.gc} %`,
    '',
    '| function | where | self ms | self % of busy | total % of busy |',
    '|---|---|--:|--:|--:|',
  ];
  for (const r of s.top) out.push(`| \`${r.name}\` | ${r.where} | ${r.selfMs} | ${r.selfPct} | ${r.totalPct} |`);
  return out.join('\n');
}

/** A machine-wide perf summary (probes/perf.ts) as two tables: by process, by symbol. */
export function perfMarkdown(s: PerfSummary): string {
  const out = [
    `Machine-wide perf samples over ${s.seconds} s of the transfer (all cores = 100 %; threads named by the program they belong to):`,
    '',
    '| % of all CPU | process | object |',
    '|--:|---|---|',
  ];
  for (const r of s.byProcess) out.push(`| ${r.pct} | ${r.who} | ${r.what} |`);
  out.push(
    '',
    'Hottest symbols. perf samples by timer on this virtual machine (no hardware counters), so a sample that falls in kernel',
    'code running with interrupts off is reported where they come on again (`_raw_spin_unlock_irqrestore`, `handle_softirqs`,',
    '`pvm_irq_enable`, by kernel): read those rows as "kernel, not attributed".',
    '',
    '| % of all CPU | process | symbol |',
    '|--:|---|---|',
  );
  for (const r of s.bySymbol) out.push(`| ${r.pct} | ${r.who} | \`${r.what}\` |`);
  return out.join('\n');
}

function profiles(r: BenchResults): string[] {
  const L: string[] = [];
  const profs = r.tun?.profiles ?? [];
  const internet = r['tun-internet']?.profiles ?? [];
  if (!(profs.length || internet.length || r.switch?.profiles.length || r.scale?.profile)) return L;
  L.push('', '## Profiles', '', 'Taken in separate runs after the measured ones (the profilers cost throughput). Self time by function, as a share of the process\'s busy time.');
  const tunProfile = (p: ProfileRun, path: string) => {
    L.push('', `### Through TUN${path} at MTU ${p.mtu} (${fmt(p.gbps, 3)} Gbit/s under the profilers)`);
    if (p.error) L.push('', `Note: ${p.error}`);
    for (const [role, sum] of Object.entries(p.processes)) L.push('', profileMarkdown(`simplevpn ${role}`, sum));
    if (p.perf) L.push('', perfMarkdown(p.perf));
  };
  for (const p of profs) tunProfile(p, '');
  for (const p of internet) tunProfile(p, ' to the host beyond the server, with TUN offloads,');
  const sp = r.scale?.profile;
  if (sp) {
    L.push('', `### Scale: ${sp.clients ?? r.scale!.clients} clients asking for an address at once (${sp.assignmentsPerSecond ?? 'n/a'}/s under the profiler)`);
    if (sp.error) L.push('', `Note: ${sp.error}`);
    if (sp.server) L.push('', profileMarkdown('simplevpn server (assigning)', sp.server));
  }
  for (const p of r.switch?.profiles ?? []) {
    L.push('', `### Switching alone, ${p.size}-byte packets (${fmt(p.mpps, 3)} Mpps under the profiler)`);
    if (p.error) L.push('', `Note: ${p.error}`);
    if (p.server) L.push('', profileMarkdown('simplevpn server (switching alone)', p.server));
  }
  return L;
}

export function markdown(r: BenchResults): string {
  const L: string[] = [];
  const m = r.machine;
  L.push('# simplevpn benchmarks: latest run', '');
  L.push(
    `${r.date}, \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}${r.sections.length < SECTIONS.length ? ' ' + r.sections.join(' ') : ''}\` (${r.mode}), ${Math.round(r.durationS)} s. ` +
      `Machine: ${m.cpus} cores (${m.model}), ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadavgAtStart}` +
      (m.tcp ? `; TCP congestion control ${m.tcp.namespaces} in the bench's namespaces (this machine's: ${m.tcp.host}). ` : '. ') +
      `Code: commit ${r.code.commit}${r.code.changed.length ? ` with uncommitted changes in ${r.code.changed.join(', ')}` : ''}. ` +
      `Every number below was measured in this run on this machine; ratios compare numbers of this run only. ` +
      `How each is measured: docs/performance.md.`,
  );
  L.push('', '## Targets (issues 7, 12, 13, 14, 15 and 17)', '', '| | section | target | measured | ratio |', '|---|---|---|---|---|');
  for (const t of r.targets) {
    const mark = t.status === 'met' ? '✅ met' : t.status === 'missed' ? '❌ missed' : '— not measured';
    L.push(`| ${mark} | ${t.section} | ${t.target} | ${t.measured} | ${t.ratio} |`);
  }
  if (r.tun) L.push(...tunSection(r.tun));
  if (r['tun-internet']) L.push(...internetSection(r['tun-internet']));
  L.push(...offloadEffect(r));
  if (r.switch) L.push(...switchSection(r.switch));
  if (r.scale) L.push(...scaleSection(r.scale));
  if (r.sdk) L.push(...sdkSection(r.sdk));
  if (r.hardening) L.push(...hardeningSection(r.hardening));
  if (r.cluster) L.push(...clusterSection(r.cluster));
  if (r.tun6) L.push(...tun6Section(r.tun6));
  L.push(...profiles(r));
  L.push('', '## Tools', '', '| tool | version |', '|---|---|');
  for (const [name, v] of Object.entries(r.tools)) L.push(`| ${name} | ${v ?? 'not available'} |`);
  if (r.notes.length) {
    L.push('', '## Notes', '');
    for (const n of r.notes) L.push(`- ${n}`);
  }
  return L.join('\n') + '\n';
}
