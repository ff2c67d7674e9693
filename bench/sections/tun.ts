// Section 1, through TUN: iperf3 (one TCP stream, client 1 -> hub -> client 2) and ping
// over every path of tun-paths.ts, one after another on the same star of namespaces, and
// then simplevpn again under node --cpu-prof (and perf, when usable) for the profiles.
// simplevpn is measured over plain tcp at each MTU of the sweep, and over wss (with tls and
// ws, its like-for-like references) and through an HTTP proxy (tinyproxy) at a few of them,
// beside plain tcp at the same MTU.

import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Host } from '../../test/support/lab.js';
import { type Star, star } from '../netlab.js';
import { type Background, type CpuShare, threadsOf, waitQuiet } from '../probes/cpu.js';
import { type ProfileSummary, summarizeProfile } from '../probes/cpuprofile.js';
import { type Rtt, iperf, ping, reachable, tunDrops } from '../probes/net.js';
import { type PerfSummary, perfRecord, perfSummarize, perfUsable } from '../probes/perf.js';
import { type Pki as TlsPki, makePki } from '../../test/support/security-kit.js';
import { errorText, sleep } from '../util.js';
import type { Section } from './section.js';
import { type OursTransport, type PathUp, Pki, type ServerCounters, openvpnPath, rawPath, simplevpnPath, wireguardGoPath } from './tun-paths.js';

/** One measurement of one path: ping, then one iperf3 transfer. */
export interface PathSample {
  gbps: number | null;
  retransmits: number | null;
  /** Ping through a tunnel just brought up (the first packets it carries). */
  rtt: Rtt | null;
  /** Ping again after the transfer: an established tunnel that has carried traffic. */
  rttAfter?: Rtt | null;
  /** CPU of each program of the path during the transfer, as a share of one core. */
  cpu: Record<string, CpuShare | null>;
  /** Both cores during the transfer (1 = both fully busy). */
  machine: { busy: number; user: number; sys: number; softirq: number } | null;
  /** CPU used meanwhile by processes that are not the bench's. */
  background: Background | null;
  /** How long the bench waited for a quiet machine first, and how busy it was then (cores). */
  quiet: { waitedMs: number; busyCores: number } | null;
  /** simplevpn only: packets the server received, sent and dropped (by reason) during the transfer. */
  server?: ServerCounters | null;
  /** simplevpn only: packets each client dropped over its life (socket full; tun refused). */
  clients?: Record<string, { socket: number; tun: number }>;
  /** Packets the kernel dropped at each client's tun device (tx: queued for the program to
   * read but its queue was full; rx: written by the program but not taken), after the transfer. */
  tunDrops?: Record<string, { tx: number; rx: number }>;
  error?: string;
}

/** A path over every round: the best transfer and the lowest RTT (the least disturbed). */
export interface PathResult extends PathSample {
  id: string;
  label: string;
  kind: 'raw' | 'simplevpn' | 'openvpn' | 'wireguard-go';
  /** Tunnel MTU (the underlay is always 1500). */
  mtu: number;
  /** simplevpn only: how the clients reached the server. Absent in results from before
   * there was more than one (plain tcp then), and on the other kinds of path. */
  transport?: OursTransport;
  /** simplevpn only: TUN offloads on (the clients' --offload; the server's tun has them unless
   * SIMPLEVPN_TUN_OFFLOAD=0) or off. Absent in results from before the field (the id then says:
   * simplevpn-offload-*). */
  offload?: boolean;
  runs: PathSample[];
}

export interface ProfileRun {
  mtu: number;
  gbps: number | null;
  processes: Record<string, ProfileSummary>;
  perf: PerfSummary | null;
  error?: string;
}

export interface TunResult {
  rounds: number;
  seconds: number;
  omit: number;
  pings: number;
  paths: PathResult[];
  /** simplevpn's best raised MTU in this run (over plain tcp). */
  bestMtu: number | null;
  profiles: ProfileRun[];
  notes: string[];
}

interface TunOptions {
  rounds: number;
  seconds: number;
  omit: number;
  pings: number;
  mtus: number[];
  /** The MTUs (of `mtus`) at which simplevpn is measured over wss and through the HTTP proxy too. */
  transportMtus: number[];
  /** Where the profiled runs write; none when absent. */
  profileDir?: string;
  /** Peers whose programs are missing, with why. */
  missing: Record<string, string>;
  log: (msg: string) => void;
}

export interface PathSpec {
  id: string;
  label: string;
  kind: PathResult['kind'];
  mtu: number;
  transport?: OursTransport;
  offload?: boolean;
  up: () => Promise<PathUp>;
}

/** What one measurement needs: the transfer's length, the echoes, where to log. */
export type MeasureOptions = Pick<TunOptions, 'seconds' | 'omit' | 'pings' | 'log'>;

/** Where a path ends (iperf3 -s runs there) and the hosts whose tun devices' drops are read. */
export interface PathEnds {
  dest: Host;
  tunHosts: Record<string, Host>;
}

/** simplevpn over plain tcp: the paths the sweep and the other targets are about. */
const plainOurs = (sp: { kind: PathResult['kind']; transport?: OursTransport }) => sp.kind === 'simplevpn' && (sp.transport ?? 'tcp') === 'tcp';

/** Client to client: iperf3 -s in client 2, the tun devices of both clients. */
const clientToClient = (s: Star): PathEnds => ({ dest: s.c2, tunHosts: { client1: s.c1, client2: s.c2 } });

/** One bring-up of `spec`: ping from client 1 to the path's target, one transfer, ping again; then down. */
export async function measureOnce(s: Star, spec: PathSpec, o: MeasureOptions, round: number, ends: PathEnds = clientToClient(s)): Promise<PathSample> {
  const res: PathSample = { gbps: null, retransmits: null, rtt: null, cpu: {}, machine: null, background: null, quiet: null };
  const t0 = Date.now();
  let up: PathUp | null = null;
  try {
    up = await spec.up();
    await reachable(s.c1, up.target);
    res.quiet = await waitQuiet();
    res.rtt = await ping(s.c1, up.target, o.pings);
    const before = up.counters ? await up.counters() : null;
    const r = await iperf(s.c1, ends.dest, up.target, o, up.procs);
    const after = up.counters ? await up.counters() : null;
    res.rttAfter = await ping(s.c1, up.target, o.pings);
    res.tunDrops = await tunDrops(ends.tunHosts);
    if (before && after) {
      const drops: Record<string, number> = {};
      for (const [k, v] of Object.entries(after.drops)) if (v - (before.drops[k] ?? 0) > 0) drops[k] = v - (before.drops[k] ?? 0);
      res.server = { received: after.received - before.received, sent: after.sent - before.sent, drops };
    }
    res.gbps = r.gbps;
    res.retransmits = r.retransmits;
    res.cpu = r.cpu;
    res.machine = r.machine;
    res.background = r.background;
  } catch (e) {
    res.error = errorText(e);
  } finally {
    await up?.stop().catch(() => {});
    if (up?.clientDrops) res.clients = up.clientDrops();
  }
  o.log(sampleLine(spec, res, round, Date.now() - t0));
  return res;
}

/** The progress line of one measurement. */
function sampleLine(spec: PathSpec, res: PathSample, round: number, ms: number): string {
  const cpu = Object.entries(res.cpu)
    .map(([k, v]) => `${k} ${v ? Math.round(v.total * 100) : '?'}%`)
    .join(', ');
  const bg = res.background && res.background.cores >= 0.05 ? `; others used ${Math.round(res.background.cores * 100)}% of a core` : '';
  const dropped = res.server ? Object.values(res.server.drops).reduce((a, b) => a + b, 0) : 0;
  let drops = dropped ? `; server dropped ${dropped} of ${res.server!.received} packets (${Object.keys(res.server!.drops).join(', ')})` : '';
  for (const [role, d] of Object.entries(res.clients ?? {})) if (d.socket + d.tun > 0) drops += `; ${role} dropped ${d.socket} (socket full) + ${d.tun} (tun full)`;
  for (const [role, d] of Object.entries(res.tunDrops ?? {})) if (d.tx + d.rx > 0) drops += `; ${role}'s tun device dropped ${d.tx} (tx) + ${d.rx} (rx)`;
  const took = ` [${Math.round(ms / 100) / 10} s${res.quiet && res.quiet.waitedMs > 1000 ? `, ${Math.round(res.quiet.waitedMs / 1000)} s waiting for quiet` : ''}]`;
  return res.error
    ? `  [${round}] ${spec.label}: FAILED: ${res.error.split('\n')[0]}${took}`
    : `  [${round}] ${spec.label}: ${res.gbps} Gbit/s, RTT median ${res.rtt?.median} ms fresh, ${res.rttAfter?.median} ms after the transfer${cpu ? ` (CPU ${cpu})` : ''}${drops}${bg}${took}`;
}

/** The best transfer and the lowest median RTT over the rounds: the least disturbed ones. */
export function combine(spec: PathSpec, runs: PathSample[]): PathResult {
  const ok = runs.filter((r) => r.gbps !== null);
  const best = ok.length ? ok.reduce((a, b) => (b.gbps! > a.gbps! ? b : a)) : runs[runs.length - 1];
  const withRtt = runs.filter((r) => r.rtt !== null);
  const rtt = withRtt.length ? withRtt.reduce((a, b) => (b.rtt!.median < a.rtt!.median ? b : a)).rtt : null;
  const withAfter = runs.filter((r) => r.rttAfter);
  const rttAfter = withAfter.length ? withAfter.reduce((a, b) => (b.rttAfter!.median < a.rttAfter!.median ? b : a)).rttAfter : null;
  const res: PathResult = {
    id: spec.id,
    label: spec.label,
    kind: spec.kind,
    mtu: spec.mtu,
    ...(spec.transport ? { transport: spec.transport } : {}),
    ...(spec.offload !== undefined ? { offload: spec.offload } : {}),
    ...best,
    rtt,
    rttAfter,
    runs,
  };
  if (ok.length) delete res.error;
  return res;
}

/** What a profiled run brings up: simplevpn at `mtu`, its programs under node --cpu-prof into `dir`, their files named by `tag`. */
export interface ProfiledPath {
  mtu: number;
  tag: string;
  up: (dir: string, tag: string) => Promise<PathUp>;
}

/** simplevpn under the profilers: node --cpu-prof on its programs, perf on the machine, one transfer to `ends.dest`. */
export async function profileRun(s: Star, path: ProfiledPath, ends: PathEnds, o: MeasureOptions, dir: string, usePerf: boolean): Promise<ProfileRun> {
  const { mtu, tag } = path;
  const run: ProfileRun = { mtu, gbps: null, processes: {}, perf: null };
  mkdirSync(dir, { recursive: true });
  let up: PathUp | null = null;
  let perf: ReturnType<typeof perfRecord> | null = null;
  const perfFile = join(dir, `perf-${tag}.data`);
  try {
    up = await path.up(dir, tag);
    const roles = Object.keys(up.procs);
    await reachable(s.c1, up.target);
    await waitQuiet();
    const r = await iperf(s.c1, ends.dest, up.target, o, up.procs, usePerf ? (sec) => (perf = perfRecord(perfFile, Math.max(1, Math.floor(sec)))) : undefined);
    run.gbps = r.gbps;
    // perf names threads: every thread of each program (V8 and libuv helpers too) by role.
    const named = new Map<number, string>([[process.pid, 'bench harness']]);
    for (const [role, p] of Object.entries(up.procs)) {
      named.set(p.pid, `simplevpn ${role}`);
      for (const tid of threadsOf(p.pid)) if (tid !== p.pid) named.set(tid, `simplevpn ${role} (helper thread)`);
    }
    await up.stop();
    up = null;
    if (perf) {
      await (perf as { done: Promise<void> }).done;
      run.perf = perfSummarize(perfFile, Math.max(1, Math.floor(o.seconds - 0.5)), named);
    }
    for (const role of roles) {
      try {
        run.processes[role] = summarizeProfile(join(dir, `${role}-${tag}.cpuprofile`));
      } catch (e) {
        run.error = (run.error ? run.error + '; ' : '') + `${role}: no profile (${errorText(e)})`;
      }
    }
  } catch (e) {
    run.error = errorText(e);
  } finally {
    await up?.stop().catch(() => {});
    if (perf) (perf as { child: { kill(): void } }).child.kill();
    rmSync(perfFile, { force: true });
  }
  o.log(run.error ? `  profile at MTU ${mtu}: ${run.error.split('\n')[0]}` : `  profiled at MTU ${mtu}: ${run.gbps} Gbit/s under the profilers`);
  return run;
}

/** The paths measured, in the order of every round: raw, the peers found here, ours at each
 * MTU, then ours over the other transports. */
function pathSpecs(s: Star, o: TunOptions, notes: string[]): { specs: PathSpec[]; pki: Pki | null; tls: TlsPki | null } {
  let pki: Pki | null = null;
  let tls: TlsPki | null = null;
  const specs: PathSpec[] = [{ id: 'raw', label: 'raw routed path (no tunnel)', kind: 'raw', mtu: 1500, up: () => rawPath(s) }];
  if (o.missing['wireguard-go']) notes.push(`wireguard-go not measured: ${o.missing['wireguard-go']}`);
  else specs.push({ id: 'wireguard-go', label: 'wireguard-go (UDP, ChaCha20-Poly1305)', kind: 'wireguard-go', mtu: 1420, up: () => wireguardGoPath(s) });
  if (o.missing.openvpn) notes.push(`OpenVPN not measured: ${o.missing.openvpn}`);
  else {
    try {
      const p = (pki = new Pki());
      specs.push({ id: 'openvpn-aes-256-gcm', label: 'OpenVPN 2.6 TCP, AES-256-GCM', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'aes-256-gcm') });
      specs.push({ id: 'openvpn-none', label: 'OpenVPN 2.6 TCP, no cipher', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'none') });
    } catch (e) {
      notes.push(`OpenVPN not measured: the throwaway PKI could not be made: ${errorText(e)}`);
    }
  }
  for (const mtu of o.mtus) {
    specs.push({ id: `simplevpn-${mtu}`, label: `simplevpn, tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'tcp', offload: false, up: () => simplevpnPath(s, { mtu }) });
    // At MTU 1500, where the kernel's packets are small, the same with TUN offloads on both
    // clients: the effect of --offload, off then on (not part of the MTU sweep, which is > 1500).
    if (mtu === 1500)
      specs.push({ id: `simplevpn-offload-${mtu}`, label: `simplevpn with --offload (TSO, super-packets), tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'tcp', offload: true, up: () => simplevpnPath(s, { mtu, offload: true }) });
  }
  const mtus = o.transportMtus.filter((m) => o.mtus.includes(m));
  if (o.missing.wss) notes.push(`simplevpn over wss not measured: ${o.missing.wss}`);
  else if (mtus.length) {
    try {
      // The server certificate names the hub by the address each client dials.
      const t = (tls = makePki([s.hub1, s.hub2], []));
      // wss with its like-for-like references: tls (the same TLS, no WebSocket) and ws (the
      // same WebSocket, no TLS, against plain tcp).
      for (const mtu of mtus) {
        specs.push({ id: `simplevpn-wss-${mtu}`, label: `simplevpn over wss (TLS, WebSocket), tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'wss', up: () => simplevpnPath(s, { mtu, transport: 'wss', tls: t }) });
        specs.push({ id: `simplevpn-tls-${mtu}`, label: `simplevpn over tls, tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'tls', up: () => simplevpnPath(s, { mtu, transport: 'tls', tls: t }) });
      }
    } catch (e) {
      notes.push(`simplevpn over wss not measured: the throwaway PKI could not be made: ${errorText(e)}`);
    }
  }
  for (const mtu of mtus)
    specs.push({ id: `simplevpn-ws-${mtu}`, label: `simplevpn over ws (WebSocket, no TLS), tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'ws', up: () => simplevpnPath(s, { mtu, transport: 'ws' }) });
  if (o.missing['tcp-proxy']) notes.push(`simplevpn through an HTTP proxy not measured: ${o.missing['tcp-proxy']}`);
  else
    for (const mtu of mtus)
      specs.push({ id: `simplevpn-proxy-${mtu}`, label: `simplevpn over tcp through an HTTP proxy (tinyproxy), tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, transport: 'tcp-proxy', up: () => simplevpnPath(s, { mtu, transport: 'tcp-proxy' }) });
  return { specs, pki, tls };
}

async function tunSection(o: TunOptions): Promise<TunResult> {
  const result: TunResult = { rounds: o.rounds, seconds: o.seconds, omit: o.omit, pings: o.pings, paths: [], bestMtu: null, profiles: [], notes: [] };
  const s = await star();
  let pki: Pki | null = null;
  let tls: TlsPki | null = null;
  try {
    const paths = pathSpecs(s, o, result.notes);
    const specs = paths.specs;
    pki = paths.pki;
    tls = paths.tls;
    // Rounds are interleaved, so a burst of load from elsewhere spoils one sample of a path
    // rather than all of them, and best-of-rounds compares like with like.
    // After the first round, the MTU sweep is narrowed to 1500 and the best raised MTU (over
    // plain tcp); the other transports follow plain tcp at their MTU, so that each is
    // measured in the same rounds as the path it is compared with.
    const runs = specs.map(() => [] as PathSample[]);
    let sweepBest = 0;
    for (let r = 1; r <= o.rounds; r++) {
      for (let i = 0; i < specs.length; i++) {
        const sp = specs[i];
        if (r > 1 && sp.kind === 'simplevpn' && sp.mtu !== 1500 && sp.mtu !== sweepBest) continue;
        runs[i].push(await measureOnce(s, sp, o, r));
        await sleep(300);
      }
      if (r === 1) {
        let best = -1;
        specs.forEach((sp, i) => {
          const g = runs[i][0]?.gbps;
          if (plainOurs(sp) && sp.mtu > 1500 && g != null && g > best) {
            best = g;
            sweepBest = sp.mtu;
          }
        });
      }
    }
    result.paths = specs.map((spec, i) => combine(spec, runs[i]));
    const raised = result.paths.filter((p) => plainOurs(p) && p.mtu > 1500 && p.gbps !== null);
    raised.sort((a, b) => b.gbps! - a.gbps!);
    result.bestMtu = raised[0]?.mtu ?? null;
    if (o.profileDir) {
      const usePerf = perfUsable();
      if (!usePerf) result.notes.push('perf is not usable here: profiles are node --cpu-prof only');
      const mtus = [1500, ...(result.bestMtu ? [result.bestMtu] : [])];
      for (const mtu of mtus) {
        const path: ProfiledPath = { mtu, tag: `mtu${mtu}`, up: (profileDir, tag) => simplevpnPath(s, { mtu, profileDir, tag }) };
        result.profiles.push(await profileRun(s, path, clientToClient(s), o, o.profileDir, usePerf));
      }
    }
  } finally {
    await s.lab.destroy();
    pki?.remove();
    tls?.cleanup();
  }
  return result;
}

/** The peers (OpenVPN, wireguard-go) whose programs are missing here, with why. */
export function peersMissing(tools: Record<string, string | null>): Record<string, string> {
  const missing: Record<string, string> = {};
  if (!tools.openvpn) missing.openvpn = 'openvpn is not installed';
  if (!tools.openssl) missing.openvpn = 'openssl (for its throwaway PKI) is not installed';
  if (!tools['wireguard-go']) missing['wireguard-go'] = 'wireguard-go is not installed';
  else if (!tools.wg) missing['wireguard-go'] = 'wg (wireguard-tools) is not installed';
  return missing;
}

export const runTun: Section<TunResult> = async (ctx) => {
  ctx.log(`\n1. Through TUN (${ctx.rounds} round${ctx.rounds > 1 ? 's' : ''} of ${ctx.seconds} s transfers)`);
  const tools = ctx.tools;
  if (process.getuid?.() !== 0) throw new Error('the TUN section needs root (network namespaces, tun devices)');
  if (!tools.iperf3) throw new Error('iperf3 is not installed');
  const missing = peersMissing(tools);
  if (!tools.openssl) missing.wss = 'openssl (for its throwaway PKI) is not installed';
  // Not installed by bench/run.mjs: Debian's package starts a proxy service of its own.
  if (!tools.tinyproxy) missing['tcp-proxy'] = 'tinyproxy is not installed (apt-get install tinyproxy)';
  return tunSection({
    rounds: ctx.rounds,
    seconds: ctx.seconds,
    omit: 1,
    pings: ctx.quick ? 20 : 50,
    mtus: ctx.quick ? [1500, 16000, 65000] : [1500, 9000, 16000, 32000, 65000],
    // 65000: what the Linux client asks for (the README's headline).
    transportMtus: [1500, 65000],
    profileDir: ctx.profileDir,
    missing,
    log: ctx.log,
  });
};
