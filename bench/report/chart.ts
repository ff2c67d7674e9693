// bench/results/latest.svg: the headline numbers as horizontal bar charts with the targets
// drawn on them, and the targets' verdicts below. Drawn here by hand (no dependency), from
// the results alone.

import type { SwitchCase } from '../sections/switch.js';
import type { PathResult } from '../sections/tun.js';
import { fmt } from '../util.js';
import type { BenchResults } from './schema.js';
import { TARGET_INTERNET_1500_SHARE, TARGET_INTERNET_BEST_SHARE, TARGET_PEER_RATIO, TARGET_RAW_SHARE, TARGET_SWITCH_GBPS, TARGET_SWITCH_MPPS, TARGET_WSS_SHARE, TARGET_TUN6_SHARE, bestPeer, rawPath, switchCase, transportOf, transportPairs, tun6Pair } from './targets.js';

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

/** Where a chart's plots start (after the labels) and its width: wide enough for its longest label. */
interface Frame {
  labelW: number;
  width: number;
}
const MIN_LABEL_W = 300;
// About the width of a character at the labels' 12 px, so that no label runs off the left edge.
const CHAR_W = 6.7;
const PLOT_W = 520;
const BAR_H = 18;
const GAP = 6;
const COLORS = { ours: '#1f6feb', oursLight: '#79a8f5', peer: '#8b949e', raw: '#24292f', ref: '#bf8700' };

/** One panel of horizontal bars; returns its SVG and height. */
function panel(f: Frame, y: number, title: string, bars: Bar[], scale: 'linear' | 'log', markers: Marker[] = []): { svg: string; height: number } {
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
    const tx = f.labelW + x(t);
    out.push(`<line x1="${tx.toFixed(1)}" y1="${top - 4}" x2="${tx.toFixed(1)}" y2="${top + plotH}" class="grid"/>`);
    out.push(`<text x="${tx.toFixed(1)}" y="${top + plotH + 13}" class="tick" text-anchor="middle">${esc(tickText(t))}</text>`);
  }
  bars.forEach((b, i) => {
    const by = top + i * (BAR_H + GAP);
    out.push(`<text x="${f.labelW - 8}" y="${by + BAR_H - 5}" class="l" text-anchor="end">${esc(b.label)}</text>`);
    if (b.value !== null && b.value > 0) {
      const w = Math.max(1, x(b.value));
      out.push(`<rect x="${f.labelW}" y="${by}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${b.color}" rx="2"/>`);
      out.push(`<text x="${(f.labelW + w + 5).toFixed(1)}" y="${by + BAR_H - 5}" class="v">${esc(b.text)}</text>`);
    } else {
      out.push(`<text x="${f.labelW + 5}" y="${by + BAR_H - 5}" class="v">${esc(b.text)}</text>`);
    }
  });
  markers.forEach((m, i) => {
    const mx = f.labelW + x(m.value);
    const ly = top - 8 - (markers.length - 1 - i) * 12;
    out.push(`<line x1="${mx.toFixed(1)}" y1="${ly + 2}" x2="${mx.toFixed(1)}" y2="${top + plotH}" class="target"/>`);
    // Labels near the right edge go to the left of their line.
    const right = mx + 190 > f.width;
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

/** The colour of a path's bar: ours (the MTUs the targets judge in the darker blue), raw, peers. */
function pathColor(p: PathResult, strong: (p: PathResult) => boolean = () => true): string {
  return p.kind === 'simplevpn' ? (strong(p) ? COLORS.ours : COLORS.oursLight) : p.kind === 'raw' ? COLORS.raw : COLORS.peer;
}

/** One bar per path in Gbit/s; `strong` picks the simplevpn paths a target judges. */
function gbpsBars(paths: PathResult[], strong: (p: PathResult) => boolean): Bar[] {
  return paths.map((p) => ({
    label: p.label,
    value: p.gbps,
    text: p.gbps === null ? 'failed' : `${fmt(p.gbps, p.gbps < 1 ? 3 : 2)} Gbit/s`,
    color: pathColor(p, strong),
  }));
}

/** The ping RTT median of every path, with OpenVPN's best as the marker (the RTT target). */
function rttPanel(f: Frame, y: number, title: string, paths: PathResult[], pick: (p: PathResult) => PathResult['rtt'] | undefined, markerLabel: string) {
  const bars: Bar[] = paths.map((p) => {
    const rtt = pick(p);
    return { label: p.label, value: rtt?.median ?? null, text: rtt ? `${fmt(rtt.median, 3)} ms` : 'n/a', color: pathColor(p) };
  });
  const ovpn = paths.filter((p) => p.kind === 'openvpn' && pick(p));
  const markers = ovpn.length ? [{ value: Math.min(...ovpn.map((p) => pick(p)!.median)), label: markerLabel }] : [];
  return panel(f, y, title, bars, 'linear', markers);
}

/** The two figures the switching targets judge: Gbit/s at 1500 bytes and Mpps at 64 bytes. */
function switchPanel(f: Frame, y: number, title: string, c: (mode: SwitchCase['mode']) => number | undefined, size: number, unit: string, target: Marker) {
  const bar = (mode: SwitchCase['mode'], label: string, color: string): Bar => ({ label: `${label}, ${size}-byte packets`, value: c(mode) ?? null, text: `${fmt(c(mode), 2)} ${unit}`, color });
  return panel(f, y, title, [bar('simplevpn', 'simplevpn server', COLORS.ours), bar('relay', 'TCP relay (reference)', COLORS.ref)], 'linear', [target]);
}

/** The targets' verdicts, each with its measured text wrapped at about 140 characters a line. */
function verdicts(y: number, r: BenchResults): { svg: string[]; height: number } {
  const out: string[] = [`<text x="16" y="${y + 16}" class="h">Targets of issues 7, 12 and 13 in this run</text>`];
  const y0 = y;
  y += 28;
  for (const tg of r.targets) {
    const color = tg.status === 'met' ? '#1a7f37' : tg.status === 'missed' ? '#cf222e' : '#8b949e';
    const mark = tg.status === 'met' ? '✔ met' : tg.status === 'missed' ? '✘ missed' : '– n/a';
    out.push(`<text x="24" y="${y + 12}" class="m" fill="${color}">${esc(mark)}</text>`);
    out.push(`<text x="110" y="${y + 12}" class="l2">${esc(`${tg.section}: ${tg.target}`)}</text>`);
    const words = `${tg.measured}${tg.ratio ? ` — ${tg.ratio}` : ''}`.split(' ');
    const lines: string[] = [''];
    for (const w of words) {
      if ((lines[lines.length - 1] + ' ' + w).length > 140) lines.push(w);
      else lines[lines.length - 1] = lines[lines.length - 1] ? lines[lines.length - 1] + ' ' + w : w;
    }
    lines.forEach((l, i) => out.push(`<text x="110" y="${y + 26 + i * 14}" class="v2">${esc(l)}</text>`));
    y += 34 + (lines.length - 1) * 14;
  }
  return { svg: out, height: y - y0 };
}

export function chart(r: BenchResults): string {
  const labels = [...(r.tun?.paths ?? []), ...(r['tun-internet']?.paths ?? [])].map((p) => p.label.length);
  const labelW = Math.max(MIN_LABEL_W, Math.ceil(Math.max(0, ...labels) * CHAR_W) + 16);
  const f: Frame = { labelW, width: labelW + PLOT_W + 140 };
  const W = f.width;
  const parts: string[] = [];
  let y = 62;
  // Each panel, then the gap below it.
  const add = (p: { svg: string; height: number }, gap: number) => {
    parts.push(p.svg);
    y += p.height + gap;
  };
  const t = r.tun;
  if (t) {
    const peer = bestPeer(t);
    const raw = rawPath(t);
    const bars = gbpsBars(t.paths, (x) => transportOf(x) === 'tcp' && (x.mtu === 1500 || x.mtu === t.bestMtu));
    const markers: Marker[] = [];
    if (peer) markers.push({ value: peer.gbps! * TARGET_PEER_RATIO, label: `target @1500: ${TARGET_PEER_RATIO}× best peer` });
    if (raw) markers.push({ value: raw.gbps! * TARGET_RAW_SHARE, label: `target raised MTU: ${TARGET_RAW_SHARE * 100} % of raw` });
    const wss = transportPairs(t, 'wss', 'tls')[0];
    const ws = transportPairs(t, 'ws')[0];
    if (wss) markers.push({ value: wss.tcp.gbps! * TARGET_WSS_SHARE, label: `target wss @${wss.mtu}: ${TARGET_WSS_SHARE * 100} % of tls` });
    if (ws) markers.push({ value: ws.tcp.gbps! * TARGET_WSS_SHARE, label: `target ws @${ws.mtu}: ${TARGET_WSS_SHARE * 100} % of plain tcp` });
    add(panel(f, y, '1. Through TUN: iperf3, one TCP stream, client → hub → client (Gbit/s, log scale)', bars, 'log', markers), 10);
    add(rttPanel(f, y, 'Ping RTT through the same paths, tunnel just up (median, ms)', t.paths, (p) => p.rtt, "target: OpenVPN's RTT"), 6);
    add(rttPanel(f, y, 'Ping RTT after the transfer: an established tunnel (median, ms)', t.paths, (p) => p.rttAfter, "OpenVPN's RTT"), 10);
  }
  const ti = r['tun-internet'];
  if (ti?.paths.length) {
    const raw = rawPath(ti);
    // Both targets of this path are shares of its raw path, judged with the offloads on.
    const markers: Marker[] = raw?.gbps
      ? [
          { value: raw.gbps * TARGET_INTERNET_1500_SHARE, label: `target @1500: ${TARGET_INTERNET_1500_SHARE * 100} % of raw` },
          { value: raw.gbps * TARGET_INTERNET_BEST_SHARE, label: `target best MTU: ${TARGET_INTERNET_BEST_SHARE * 100} % of raw` },
        ]
      : [];
    add(panel(f, y, '1b. Through TUN to a host beyond the server: client → server → NAT → host (Gbit/s, log scale)', gbpsBars(ti.paths, (x) => x.offload === true), 'log', markers), 6);
    add(rttPanel(f, y, 'Ping RTT to the host beyond, tunnel just up (median, ms)', ti.paths, (p) => p.rtt, "OpenVPN's RTT"), 10);
  }
  const s = r.switch;
  if (s) {
    const gbps = (mode: SwitchCase['mode']) => switchCase(s, mode, 1500)?.gbps;
    const mpps = (mode: SwitchCase['mode']) => switchCase(s, mode, 64)?.mpps;
    add(switchPanel(f, y, '2. Switching alone over loopback (Gbit/s delivered)', gbps, 1500, 'Gbit/s', { value: TARGET_SWITCH_GBPS, label: `target ${TARGET_SWITCH_GBPS} Gbit/s` }), 6);
    add(switchPanel(f, y, 'Switching alone over loopback (million packets/s delivered)', mpps, 64, 'Mpps', { value: TARGET_SWITCH_MPPS, label: `target ${TARGET_SWITCH_MPPS} Mpps` }), 10);
  }
  const t6 = r.tun6;
  if (t6?.samples.length) {
    const bars: Bar[] = t6.samples.map((x) => ({
      label: `simplevpn ${x.family === 'ipv6' ? 'IPv6' : 'IPv4'} @${x.mtu}`,
      value: x.gbps,
      text: x.gbps === null ? 'failed' : `${fmt(x.gbps, x.gbps < 1 ? 3 : 2)} Gbit/s`,
      color: x.family === 'ipv6' ? COLORS.ours : COLORS.oursLight,
    }));
    const v4 = tun6Pair(t6).v4?.gbps;
    const markers: Marker[] = v4 ? [{ value: v4 * TARGET_TUN6_SHARE, label: `target: ${TARGET_TUN6_SHARE * 100} % of IPv4` }] : [];
    add(panel(f, y, '7. IPv6 through TUN beside IPv4, same bring-up (Gbit/s)', bars, 'linear', markers), 10);
  }
  const v = verdicts(y, r);
  parts.push(...v.svg);
  y += v.height + 10;
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
