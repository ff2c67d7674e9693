// The results of one run: the targets of issue 7 judged against them, and the three files
// a reader looks at: latest.json (everything), latest.md (tables) and latest.svg (a chart,
// drawn here by hand: no dependency).

import { profileMarkdown } from './cpuprofile.js';
import { perfMarkdown } from './perf.js';
import type { ScaleResult } from './scale.js';
import type { SdkResult } from './sdk.js';
import type { SwitchCase, SwitchResult } from './switch.js';
import type { PathResult, TunResult } from './tun.js';
import { fmt } from './util.js';

export interface Machine {
  cpus: number;
  model: string;
  memGiB: number;
  kernel: string;
  node: string;
  loadavgAtStart: string;
}

export interface BenchResults {
  version: 1;
  date: string;
  /** The code measured: the commit, and files of the data path changed since it. */
  code: { commit: string; changed: string[] };
  mode: 'full' | 'quick';
  sections: string[];
  durationS: number;
  machine: Machine;
  tools: Record<string, string | null>;
  notes: string[];
  tun?: TunResult;
  switch?: SwitchResult;
  scale?: ScaleResult;
  sdk?: SdkResult;
  targets: Target[];
}

export interface Target {
  id: string;
  section: string;
  target: string;
  measured: string;
  ratio: string;
  status: 'met' | 'missed' | 'not measured';
}

const TARGET_SWITCH_GBPS = 10;
const TARGET_SWITCH_MPPS = 1;
const TARGET_MEM_PER_CLIENT = 3 * 1024;
const TARGET_ASSIGN_PER_S = 5000;
const TARGET_CLIENTS = 10_000;

export function oursAt(t: TunResult, mtu: number | null): PathResult | undefined {
  return mtu === null ? undefined : t.paths.find((p) => p.kind === 'simplevpn' && p.mtu === mtu);
}

export function bestPeer(t: TunResult): PathResult | undefined {
  const peers = t.paths.filter((p) => (p.kind === 'openvpn' || p.kind === 'wireguard-go') && p.gbps !== null);
  return peers.length ? peers.reduce((a, b) => (b.gbps! > a.gbps! ? b : a)) : undefined;
}

function switchCase(s: SwitchResult | undefined, mode: SwitchCase['mode'], size: number): SwitchCase | undefined {
  return s?.cases.find((c) => c.mode === mode && c.size === size && !c.error);
}

export function judge(r: Omit<BenchResults, 'targets'>): Target[] {
  const out: Target[] = [];
  const add = (id: string, section: string, target: string, ok: boolean | null, measured: string, ratio = '') =>
    out.push({ id, section, target, measured, ratio, status: ok === null ? 'not measured' : ok ? 'met' : 'missed' });

  const t = r.tun;
  const o1500 = t ? oursAt(t, 1500) : undefined;
  const peer = t ? bestPeer(t) : undefined;
  if (o1500?.gbps != null && peer) {
    const ratio = o1500.gbps / peer.gbps!;
    add('tun-throughput', 'through TUN', 'MTU 1500: at least 1.5x the best peer', ratio >= 1.5, `${fmt(o1500.gbps, 3)} Gbit/s vs ${peer.label} ${fmt(peer.gbps, 3)} Gbit/s`, `${fmt(ratio)}x`);
  } else add('tun-throughput', 'through TUN', 'MTU 1500: at least 1.5x the best peer', null, o1500?.error ?? (t ? 'no peer measured' : 'section not run'));
  const ovpn = t?.paths.filter((p) => p.kind === 'openvpn' && p.rtt) ?? [];
  if (o1500?.rtt && ovpn.length) {
    const best = ovpn.reduce((a, b) => (b.rtt!.median < a.rtt!.median ? b : a));
    const ratio = o1500.rtt.median / best.rtt!.median;
    // Judged on the fresh tunnel, the stricter of the two; the established one is reported beside it.
    const after = o1500.rttAfter && best.rttAfter ? `; after the transfer ${fmt(o1500.rttAfter.median, 3)} ms vs ${fmt(best.rttAfter.median, 3)} ms (${fmt(o1500.rttAfter.median / best.rttAfter.median)}x)` : '';
    add('tun-rtt', 'through TUN', "RTT no worse than OpenVPN's", o1500.rtt.median <= best.rtt!.median, `fresh tunnel: median ${fmt(o1500.rtt.median, 3)} ms vs ${fmt(best.rtt!.median, 3)} ms (${best.label})${after}`, `${fmt(ratio)}x`);
  } else add('tun-rtt', 'through TUN', "RTT no worse than OpenVPN's", null, t ? 'OpenVPN or ours not measured' : 'section not run');
  const raw = t?.paths.find((p) => p.kind === 'raw' && p.gbps !== null);
  const raised = t ? oursAt(t, t.bestMtu) : undefined;
  if (raised?.gbps != null && raw) {
    const ratio = raised.gbps / raw.gbps!;
    add('tun-raised-mtu', 'through TUN', 'raised tunnel MTU: at least 25 % of the raw path', ratio >= 0.25, `${fmt(raised.gbps, 3)} Gbit/s at MTU ${raised.mtu} vs raw ${fmt(raw.gbps, 3)} Gbit/s`, `${fmt(ratio * 100, 1)} %`);
  } else add('tun-raised-mtu', 'through TUN', 'raised tunnel MTU: at least 25 % of the raw path', null, t ? 'raised MTU or raw path not measured' : 'section not run');

  const s = r.switch;
  const s1500 = switchCase(s, 'simplevpn', 1500);
  const r1500 = switchCase(s, 'relay', 1500);
  if (s1500) add('switch-gbps', 'switching', `at least ${TARGET_SWITCH_GBPS} Gbit/s with 1500-byte packets`, s1500.gbps >= TARGET_SWITCH_GBPS, `${fmt(s1500.gbps, 2)} Gbit/s (TCP relay: ${fmt(r1500?.gbps, 2)})`, r1500 ? `${fmt(s1500.gbps / r1500.gbps)}x relay` : '');
  else add('switch-gbps', 'switching', `at least ${TARGET_SWITCH_GBPS} Gbit/s with 1500-byte packets`, null, s ? 'failed' : 'section not run');
  const s64 = switchCase(s, 'simplevpn', 64);
  const r64 = switchCase(s, 'relay', 64);
  if (s64) add('switch-pps', 'switching', `at least ${TARGET_SWITCH_MPPS} M packets/s with 64-byte packets`, s64.mpps >= TARGET_SWITCH_MPPS, `${fmt(s64.mpps, 2)} Mpps (TCP relay: ${fmt(r64?.mpps, 2)})`, r64 ? `${fmt(s64.mpps / r64.mpps)}x relay` : '');
  else add('switch-pps', 'switching', `at least ${TARGET_SWITCH_MPPS} M packets/s with 64-byte packets`, null, s ? 'failed' : 'section not run');

  const sc = r.scale;
  const enough = sc ? sc.clients >= TARGET_CLIENTS && sc.hold?.open === sc.clients : false;
  if (sc?.memory) {
    const per = sc.memory.rssPerClient;
    const ref = sc.reference && !sc.reference.error ? sc.reference : null;
    const floor = ref ? `; a bare node:net server holding the same clients: ${ref.rssPerClient} B each, so simplevpn adds ${per - ref.rssPerClient} B` : '';
    add(
      'scale-memory',
      'scale',
      `${TARGET_CLIENTS} clients at no more than 3 KB (3,072 B) of server memory each`,
      per <= TARGET_MEM_PER_CLIENT && enough,
      `${per} B RSS per client (JS heap ${sc.memory.heapPerClient} B) with ${sc.hold?.open} of ${sc.clients} clients held${floor}`,
      `${fmt(per / TARGET_MEM_PER_CLIENT)}x the budget` + (ref ? `, ${fmt(per / ref.rssPerClient)}x the bare server` : ''),
    );
  } else add('scale-memory', 'scale', `${TARGET_CLIENTS} clients at no more than 3 KB of server memory each`, null, sc?.error ?? 'section not run');
  if (sc?.assignmentsPerSecond) {
    add('scale-assign', 'scale', `at least ${TARGET_ASSIGN_PER_S} address assignments/s`, sc.assignmentsPerSecond >= TARGET_ASSIGN_PER_S && sc.failed === 0, `${sc.assignmentsPerSecond}/s (${sc.assigned} clients in ${sc.assignSeconds} s${sc.failed ? `, ${sc.failed} failed` : ''})`, `${fmt(sc.assignmentsPerSecond / TARGET_ASSIGN_PER_S)}x`);
  } else add('scale-assign', 'scale', `at least ${TARGET_ASSIGN_PER_S} address assignments/s`, null, sc?.error ?? 'section not run');

  const k = r.sdk;
  const aligned = k?.receiveAligned;
  if (k?.receive && k.send && aligned) {
    // Per packet: the receive path fed whole packets, and send. The frame that straddles two
    // chunks is assembled in a buffer of its own: an allocation per chunk, not per packet,
    // shown beside it.
    const rx = aligned.heapBytesPerPacket + aligned.bufferBytesPerPacket;
    const rxChunked = k.receive.heapBytesPerPacket + k.receive.bufferBytesPerPacket;
    const tx = k.send.heapBytesPerPacket + k.send.bufferBytesPerPacket;
    add(
      'sdk-alloc',
      'SDK',
      'no allocation per forwarded packet in steady state',
      rx < 1 && tx < 1,
      `receive ${fmt(rx, 1)} B/packet (${fmt(rxChunked, 1)} B/packet averaged with 64 KiB chunks, frames straddling two chunks included), send ${fmt(tx, 1)} B/packet`,
    );
  } else add('sdk-alloc', 'SDK', 'no allocation per forwarded packet in steady state', null, k?.error ?? 'section not run');
  return out;
}

// ---- Markdown ------------------------------------------------------------------------------

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

const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${Math.round(x * 100)} %`);

function cpuText(c: Record<string, { total: number } | null>): string {
  return (
    Object.entries(c)
      .map(([k, v]) => `${k} ${pct(v?.total)}`)
      .join(', ') || '—'
  );
}

export function markdown(r: BenchResults): string {
  const L: string[] = [];
  const m = r.machine;
  L.push('# simplevpn benchmarks: latest run', '');
  L.push(
    `${r.date}, \`npm run bench${r.mode === 'quick' ? ' -- --quick' : ''}${r.sections.length < 4 ? ' ' + r.sections.join(' ') : ''}\` (${r.mode}), ${Math.round(r.durationS)} s. ` +
      `Machine: ${m.cpus} cores (${m.model}), ${m.memGiB} GiB, Linux ${m.kernel}, Node ${m.node}; load average at start ${m.loadavgAtStart}. ` +
      `Code: commit ${r.code.commit}${r.code.changed.length ? ` with uncommitted changes in ${r.code.changed.join(', ')}` : ''}. ` +
      `Every number below was measured in this run on this machine; ratios compare numbers of this run only. ` +
      `How each is measured: docs/performance.md.`,
  );
  L.push('', '## Targets (issue 7)', '', '| | section | target | measured | ratio |', '|---|---|---|---|---|');
  for (const t of r.targets) {
    const mark = t.status === 'met' ? '✅ met' : t.status === 'missed' ? '❌ missed' : '— not measured';
    L.push(`| ${mark} | ${t.section} | ${t.target} | ${t.measured} | ${t.ratio} |`);
  }

  const t = r.tun;
  if (t) {
    const raw = t.paths.find((p) => p.kind === 'raw' && p.gbps !== null);
    const o1500 = oursAt(t, 1500);
    const ob = oursAt(t, t.bestMtu);
    L.push(
      '',
      '## 1. Through TUN',
      '',
      `iperf3, one TCP stream, client 1 → hub → client 2 between network namespaces on veth links (MTU 1500), ${t.seconds} s per transfer after ${t.omit} s omitted; ` +
        `best of ${t.rounds} interleaved round${t.rounds > 1 ? 's' : ''}. RTT: ping, ${t.pings} echoes 50 ms apart, median of the quietest round, once right after the tunnel came up and once after the transfer. ` +
        `CPU: share of one core of each program of the path during the transfer; "others": processes outside the bench meanwhile.`,
      '',
      '| path | tunnel MTU | Gbit/s | of raw | ours @1500 ÷ this | ours @best ÷ this | RTT median (p90) ms, fresh tunnel | RTT median (p90) ms, after the transfer | CPU during transfer | iperf3 retransmits | machine busy | others |',
      '|---|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|',
    );
    for (const p of t.paths) {
      const g = p.gbps;
      const ofRaw = g !== null && raw ? pct(g / raw.gbps!) : 'n/a';
      const r1 = g !== null && o1500?.gbps ? fmt(o1500.gbps / g) + 'x' : 'n/a';
      const rb = g !== null && ob?.gbps ? fmt(ob.gbps / g) + 'x' : 'n/a';
      const rtt = p.rtt ? `${fmt(p.rtt.median, 3)} (${fmt(p.rtt.p90, 3)})` : 'n/a';
      const rttAfter = p.rttAfter ? `${fmt(p.rttAfter.median, 3)} (${fmt(p.rttAfter.p90, 3)})` : 'n/a';
      const runs = p.runs.length > 1 ? ` <sub>(${p.runs.map((x) => fmt(x.gbps, 2)).join(' / ')})</sub>` : '';
      const name = p.error ? `${p.label} — **failed**: ${p.error.split('\n')[0].slice(0, 160)}` : p.label;
      L.push(
        `| ${name} | ${p.mtu} | ${fmt(g, 3)}${runs} | ${ofRaw} | ${r1} | ${rb} | ${rtt} | ${rttAfter} | ${cpuText(p.cpu)} | ${p.retransmits ?? 'n/a'}${serverDrops(p)} | ${pct(p.machine?.busy)} | ${p.background ? fmt(p.background.cores, 2) + ' cores' : 'n/a'} |`,
      );
    }
    if (t.bestMtu) L.push('', `Best raised tunnel MTU in this run: **${t.bestMtu}** (${fmt(ob?.gbps, 3)} Gbit/s).`);
    for (const n of t.notes) L.push('', `Note: ${n}`);
  }

  const s = r.switch;
  if (s) {
    L.push(
      '',
      '## 2. Switching alone (no TUN)',
      '',
      `One sender and one receiver process over loopback${s.isolated ? ' (in a network namespace of their own)' : ''}; the server alone in its process. ` +
        `Best of ${s.rounds} interleaved round${s.rounds > 1 ? 's' : ''}; ${s.cases[0]?.seconds ?? '?'} s measured after warm-up. Reference: a plain node:net relay that pipes one socket into the other.`,
      '',
      '| server | packet | delivered Gbit/s | delivered Mpps | sent Gbit/s | server CPU (user+sys) | server ns/packet | sender CPU | receiver CPU | machine busy | others | ours ÷ relay |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const c of s.cases) {
      const ref = c.mode === 'simplevpn' ? switchCase(s, 'relay', c.size) : undefined;
      const ratio = ref && !c.error ? `${fmt(c.gbps / ref.gbps)}x` : '';
      const cpu = c.cpu.server ? `${pct(c.cpu.server.total)} (${pct(c.cpu.server.user)}+${pct(c.cpu.server.sys)})` : 'n/a';
      const drops = c.drops && Object.keys(c.drops).length ? ` <sub>drops: ${Object.entries(c.drops).map(([k, v]) => `${k} ${v}`).join(', ')}</sub>` : '';
      const name = c.error ? `${c.mode} — **failed**: ${c.error.split('\n')[0].slice(0, 160)}` : c.mode === 'relay' ? 'TCP relay (reference)' : 'simplevpn';
      L.push(
        `| ${name} | ${c.size} B | ${fmt(c.gbps, 2)} | ${fmt(c.mpps, 3)} | ${fmt(c.sentGbps, 2)}${drops} | ${cpu} | ${fmt(c.serverNsPerPacket, 0)} | ${pct(c.cpu.sender?.total)} | ${pct(c.cpu.receiver?.total)} | ${pct(c.machine?.busy)} | ${c.background ? fmt(c.background.cores, 2) : 'n/a'} | ${ratio} |`,
      );
    }
  }

  const sc = r.scale;
  if (sc) {
    L.push('', '## 3. Scale', '');
    if (sc.error) L.push(`**Failed:** ${sc.error}`, '');
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
    if (sc.memory) {
      const mb = (x: number) => (x / 1048576).toFixed(1) + ' MiB';
      L.push(
        `| server RSS before → after (after a full GC) | ${mb(sc.memory.before.rss)} → ${mb(sc.memory.after.rss)} |`,
        `| server JS heap before → after | ${mb(sc.memory.before.heapUsed)} → ${mb(sc.memory.after.heapUsed)} |`,
        `| **RSS per client** | **${sc.memory.rssPerClient} B** |`,
        `| JS heap per client (used; reserved: ${sc.memory.heapTotalPerClient} B) | ${sc.memory.heapPerClient} B |`,
        `| marginal cost of a client (second half of the clients only): RSS, JS heap | ${sc.memory.marginalRssPerClient ?? 'n/a'} B, ${sc.memory.marginalHeapPerClient ?? 'n/a'} B |`,
        `| off-heap (external) per client | ${sc.memory.externalPerClient} B |`,
      );
    }
    const ref = sc.reference;
    if (ref && !ref.error)
      L.push(
        `| reference: a bare node:net server holding the same clients (bench/fixtures/floor-server.ts), RSS and JS heap per client | ${ref.rssPerClient} B, ${ref.heapPerClient} B |`,
        `| what simplevpn adds per client above that floor: RSS, JS heap | ${sc.memory ? sc.memory.rssPerClient - ref.rssPerClient : 'n/a'} B, ${sc.memory ? sc.memory.heapPerClient - ref.heapPerClient : 'n/a'} B |`,
      );
    else if (ref?.error) L.push(`| reference (bare node:net server) | failed: ${ref.error.split('\n')[0]} |`);
    if (sc.background) L.push(`| others (processes outside the bench) while assigning | ${fmt(sc.background.cores, 2)} cores |`);
    const hp = sc.memory?.heap;
    if (hp) {
      L.push('', `What the JS heap holds per client (heap snapshots before and after, ${hp.total} B in all; self sizes):`, '', '| objects per client | bytes per client | constructor or kind |', '|--:|--:|---|');
      for (const g of hp.groups) L.push(`| ${g.count} | ${g.bytes} | \`${g.name}\` |`);
    }
  }

  const k = r.sdk;
  if (k) {
    L.push('', '## 4. The SDK', '');
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
  }

  const profs = r.tun?.profiles ?? [];
  if (profs.length || r.switch?.profiles.length || r.scale?.profile) {
    L.push('', '## Profiles', '', 'Taken in separate runs after the measured ones (the profilers cost throughput). Self time by function, as a share of the process\'s busy time.');
    for (const p of profs) {
      L.push('', `### Through TUN at MTU ${p.mtu} (${fmt(p.gbps, 3)} Gbit/s under the profilers)`);
      if (p.error) L.push('', `Note: ${p.error}`);
      for (const [role, sum] of Object.entries(p.processes)) L.push('', profileMarkdown(`simplevpn ${role}`, sum));
      if (p.perf) L.push('', perfMarkdown(p.perf));
    }
    const sp = r.scale?.profile;
    if (sp) {
      L.push('', `### Scale: ${r.scale!.clients} clients asking for an address at once (${sp.assignmentsPerSecond ?? 'n/a'}/s under the profiler)`);
      if (sp.error) L.push('', `Note: ${sp.error}`);
      if (sp.server) L.push('', profileMarkdown('simplevpn server (assigning)', sp.server));
    }
    for (const p of r.switch?.profiles ?? []) {
      L.push('', `### Switching alone, ${p.size}-byte packets (${fmt(p.mpps, 3)} Mpps under the profiler)`);
      if (p.error) L.push('', `Note: ${p.error}`);
      if (p.server) L.push('', profileMarkdown('simplevpn server (switching alone)', p.server));
    }
  }
  L.push('', '## Tools', '', '| tool | version |', '|---|---|');
  for (const [name, v] of Object.entries(r.tools)) L.push(`| ${name} | ${v ?? 'not available'} |`);
  if (r.notes.length) {
    L.push('', '## Notes', '');
    for (const n of r.notes) L.push(`- ${n}`);
  }
  return L.join('\n') + '\n';
}

// ---- SVG -----------------------------------------------------------------------------------

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Bar {
  label: string;
  value: number | null;
  text: string;
  color: string;
}

interface Marker {
  value: number;
  label: string;
}

const W = 960;
const LABEL_W = 300;
const PLOT_W = 520;
const BAR_H = 18;
const GAP = 6;
const COLORS = { ours: '#1f6feb', oursLight: '#79a8f5', peer: '#8b949e', raw: '#24292f', ref: '#bf8700' };

/** One panel of horizontal bars; returns its SVG and height. */
function panel(y: number, title: string, bars: Bar[], scale: 'linear' | 'log', markers: Marker[] = []): { svg: string; height: number } {
  const vals = bars.map((b) => b.value).filter((v): v is number => v !== null && v > 0);
  const maxV = Math.max(...vals, ...markers.map((m) => m.value), 1e-9);
  let x: (v: number) => number;
  let ticks: number[];
  if (scale === 'log') {
    const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...vals, ...markers.map((m) => m.value)))));
    const hi = Math.pow(10, Math.ceil(Math.log10(maxV * 1.05)));
    x = (v) => (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) * PLOT_W;
    ticks = [];
    for (let t = lo; t <= hi * 1.0001; t *= 10) ticks.push(t);
  } else {
    const step = niceStep(maxV / 5);
    const hi = Math.ceil((maxV * 1.05) / step) * step;
    x = (v) => (v / hi) * PLOT_W;
    ticks = [];
    for (let t = 0; t <= hi + 1e-9; t += step) ticks.push(t);
  }
  const top = y + 30 + markers.length * 12;
  const plotH = bars.length * (BAR_H + GAP);
  const out: string[] = [`<text x="16" y="${y + 16}" class="h">${esc(title)}</text>`];
  for (const t of ticks) {
    const tx = LABEL_W + x(t);
    out.push(`<line x1="${tx.toFixed(1)}" y1="${top - 4}" x2="${tx.toFixed(1)}" y2="${top + plotH}" class="grid"/>`);
    out.push(`<text x="${tx.toFixed(1)}" y="${top + plotH + 13}" class="tick" text-anchor="middle">${esc(tickText(t))}</text>`);
  }
  bars.forEach((b, i) => {
    const by = top + i * (BAR_H + GAP);
    out.push(`<text x="${LABEL_W - 8}" y="${by + BAR_H - 5}" class="l" text-anchor="end">${esc(b.label)}</text>`);
    if (b.value !== null && b.value > 0) {
      const w = Math.max(1, x(b.value));
      out.push(`<rect x="${LABEL_W}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${b.color}" rx="2"/>`);
      out.push(`<text x="${(LABEL_W + w + 5).toFixed(1)}" y="${by + BAR_H - 5}" class="v">${esc(b.text)}</text>`);
    } else {
      out.push(`<text x="${LABEL_W + 5}" y="${by + BAR_H - 5}" class="v">${esc(b.text)}</text>`);
    }
  });
  markers.forEach((m, i) => {
    const mx = LABEL_W + x(m.value);
    const ly = top - 8 - (markers.length - 1 - i) * 12;
    out.push(`<line x1="${mx.toFixed(1)}" y1="${ly + 2}" x2="${mx.toFixed(1)}" y2="${top + plotH}" class="target"/>`);
    // Labels near the right edge go to the left of their line.
    const right = mx + 190 > W;
    out.push(`<text x="${(right ? mx - 3 : mx + 3).toFixed(1)}" y="${ly}" class="tl"${right ? ' text-anchor="end"' : ''}>${esc(m.label)}</text>`);
  });
  return { svg: out.join('\n'), height: top - y + plotH + 30 };
}

function niceStep(raw: number): number {
  const p = Math.pow(10, Math.floor(Math.log10(raw || 1)));
  const n = raw / p;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
}

function tickText(v: number): string {
  if (v === 0) return '0';
  if (v >= 1000) return `${v / 1000}k`;
  return v >= 1 ? String(+v.toFixed(2)) : String(+v.toPrecision(2));
}

export function svg(r: BenchResults): string {
  const parts: string[] = [];
  let y = 62;
  const t = r.tun;
  if (t) {
    const peer = bestPeer(t);
    const raw = t.paths.find((p) => p.kind === 'raw' && p.gbps !== null);
    const bars: Bar[] = t.paths.map((p) => ({
      label: p.label,
      value: p.gbps,
      text: p.gbps === null ? 'failed' : `${fmt(p.gbps, p.gbps < 1 ? 3 : 2)} Gbit/s`,
      color: p.kind === 'simplevpn' ? (p.mtu === 1500 || p.mtu === t.bestMtu ? COLORS.ours : COLORS.oursLight) : p.kind === 'raw' ? COLORS.raw : COLORS.peer,
    }));
    const markers: Marker[] = [];
    if (peer) markers.push({ value: peer.gbps! * 1.5, label: 'target @1500: 1.5× best peer' });
    if (raw) markers.push({ value: raw.gbps! * 0.25, label: 'target raised MTU: 25 % of raw' });
    const p1 = panel(y, '1. Through TUN: iperf3, one TCP stream, client → hub → client (Gbit/s, log scale)', bars, 'log', markers);
    parts.push(p1.svg);
    y += p1.height + 10;
    const rttBars: Bar[] = t.paths.map((p) => ({
      label: p.label,
      value: p.rtt?.median ?? null,
      text: p.rtt ? `${fmt(p.rtt.median, 3)} ms` : 'n/a',
      color: p.kind === 'simplevpn' ? COLORS.ours : p.kind === 'raw' ? COLORS.raw : COLORS.peer,
    }));
    const ovpn = t.paths.filter((p) => p.kind === 'openvpn' && p.rtt);
    const rttMarkers = ovpn.length ? [{ value: Math.min(...ovpn.map((p) => p.rtt!.median)), label: "target: OpenVPN's RTT" }] : [];
    const p2 = panel(y, 'Ping RTT through the same paths, tunnel just up (median, ms)', rttBars, 'linear', rttMarkers);
    parts.push(p2.svg);
    y += p2.height + 6;
    const afterBars: Bar[] = t.paths.map((p) => ({
      label: p.label,
      value: p.rttAfter?.median ?? null,
      text: p.rttAfter ? `${fmt(p.rttAfter.median, 3)} ms` : 'n/a',
      color: p.kind === 'simplevpn' ? COLORS.ours : p.kind === 'raw' ? COLORS.raw : COLORS.peer,
    }));
    const ovpnAfter = t.paths.filter((p) => p.kind === 'openvpn' && p.rttAfter);
    const afterMarkers = ovpnAfter.length ? [{ value: Math.min(...ovpnAfter.map((p) => p.rttAfter!.median)), label: "OpenVPN's RTT" }] : [];
    const p2b = panel(y, 'Ping RTT after the transfer: an established tunnel (median, ms)', afterBars, 'linear', afterMarkers);
    parts.push(p2b.svg);
    y += p2b.height + 10;
  }
  const s = r.switch;
  if (s) {
    const c = (mode: SwitchCase['mode'], size: number) => switchCase(s, mode, size);
    const g: Bar[] = [
      { label: 'simplevpn server, 1500-byte packets', value: c('simplevpn', 1500)?.gbps ?? null, text: `${fmt(c('simplevpn', 1500)?.gbps, 2)} Gbit/s`, color: COLORS.ours },
      { label: 'TCP relay (reference), 1500-byte packets', value: c('relay', 1500)?.gbps ?? null, text: `${fmt(c('relay', 1500)?.gbps, 2)} Gbit/s`, color: COLORS.ref },
    ];
    const p3 = panel(y, '2. Switching alone over loopback (Gbit/s delivered)', g, 'linear', [{ value: 10, label: 'target 10 Gbit/s' }]);
    parts.push(p3.svg);
    y += p3.height + 6;
    const pp: Bar[] = [
      { label: 'simplevpn server, 64-byte packets', value: c('simplevpn', 64)?.mpps ?? null, text: `${fmt(c('simplevpn', 64)?.mpps, 2)} Mpps`, color: COLORS.ours },
      { label: 'TCP relay (reference), 64-byte packets', value: c('relay', 64)?.mpps ?? null, text: `${fmt(c('relay', 64)?.mpps, 2)} Mpps`, color: COLORS.ref },
    ];
    const p4 = panel(y, 'Switching alone over loopback (million packets/s delivered)', pp, 'linear', [{ value: 1, label: 'target 1 Mpps' }]);
    parts.push(p4.svg);
    y += p4.height + 10;
  }
  // Targets.
  parts.push(`<text x="16" y="${y + 16}" class="h">Targets of issue 7 in this run</text>`);
  y += 28;
  for (const tg of r.targets) {
    const color = tg.status === 'met' ? '#1a7f37' : tg.status === 'missed' ? '#cf222e' : '#8b949e';
    const mark = tg.status === 'met' ? '✔ met' : tg.status === 'missed' ? '✘ missed' : '– n/a';
    parts.push(`<text x="24" y="${y + 12}" class="m" fill="${color}">${esc(mark)}</text>`);
    parts.push(`<text x="110" y="${y + 12}" class="l2">${esc(`${tg.section}: ${tg.target}`)}</text>`);
    // The measured text, wrapped at about 140 characters a line.
    const words = `${tg.measured}${tg.ratio ? ` — ${tg.ratio}` : ''}`.split(' ');
    const lines: string[] = [''];
    for (const w of words) {
      if ((lines[lines.length - 1] + ' ' + w).length > 140) lines.push(w);
      else lines[lines.length - 1] = lines[lines.length - 1] ? lines[lines.length - 1] + ' ' + w : w;
    }
    lines.forEach((l, i) => parts.push(`<text x="110" y="${y + 26 + i * 14}" class="v2">${esc(l)}</text>`));
    y += 34 + (lines.length - 1) * 14;
  }
  y += 10;
  const m = r.machine;
  const head = [
    `<text x="16" y="26" class="t">simplevpn benchmarks</text>`,
    `<text x="16" y="46" class="sub">${esc(`${r.date.slice(0, 16).replace('T', ' ')} UTC · ${r.mode} run · ${m.cpus} cores (${m.model}) · Linux ${m.kernel} · Node ${m.node} · all numbers from this run`)}</text>`,
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" viewBox="0 0 ${W} ${y}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`,
    '<style>.t{font-size:20px;font-weight:bold;fill:#24292f}.sub{font-size:12px;fill:#57606a}.h{font-size:14px;font-weight:bold;fill:#24292f}' +
      '.l{font-size:12px;fill:#24292f}.v{font-size:11px;fill:#24292f}.tick{font-size:10px;fill:#57606a}.grid{stroke:#d0d7de;stroke-width:1}' +
      '.target{stroke:#cf222e;stroke-width:1.5;stroke-dasharray:4 3}.tl{font-size:10px;fill:#cf222e}.m{font-size:12px;font-weight:bold}' +
      '.l2{font-size:12px;fill:#24292f}.v2{font-size:11px;fill:#57606a}</style>',
    `<rect width="${W}" height="${y}" fill="#ffffff"/>`,
    ...head,
    ...parts,
    '</svg>',
  ].join('\n');
}
