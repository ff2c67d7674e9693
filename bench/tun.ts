// Section 1, through TUN: iperf3 (one TCP stream, client 1 -> hub -> client 2) and ping
// over every path of bench/peers.ts, one after another on the same star of namespaces, and
// then simplevpn again under node --cpu-prof (and perf, when usable) for the profiles.

import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ProfileSummary, summarizeProfile } from './cpuprofile.js';
import { type Host, type Star, star } from './netlab.js';
import { type PathUp, Pki, type ServerCounters, openvpnPath, rawPath, simplevpnPath, wireguardGoPath } from './peers.js';
import { type PerfSummary, perfRecord, perfSummarize, perfUsable } from './perf.js';
import {
  type Background,
  type CpuShare,
  backgroundSampler,
  cpuShare,
  errorText,
  median,
  procTimes,
  quantile,
  round,
  sleep,
  systemShare,
  systemTimes,
  waitQuiet,
} from './util.js';

export interface Rtt {
  /** Milliseconds over `count` echoes. */
  median: number;
  avg: number;
  min: number;
  p90: number;
  count: number;
  lost: number;
}

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
  /** simplevpn's best raised MTU in this run. */
  bestMtu: number | null;
  profiles: ProfileRun[];
  notes: string[];
}

export interface TunOptions {
  rounds: number;
  seconds: number;
  omit: number;
  pings: number;
  mtus: number[];
  profile: boolean;
  profileDir: string;
  /** Peers whose programs are missing, with why. */
  missing: Record<string, string>;
  log: (msg: string) => void;
}

/** The drop counters of the tun devices (wireguard-go's too) in the two clients. */
async function tunDrops(s: Star): Promise<Record<string, { tx: number; rx: number }>> {
  const out: Record<string, { tx: number; rx: number }> = {};
  for (const [role, h] of [
    ['client1', s.c1],
    ['client2', s.c2],
  ] as const) {
    const r = await h.exec(['ip', '-j', '-s', 'link', 'show', 'type', 'tun']);
    try {
      for (const l of JSON.parse(r.stdout) as Array<{ stats64?: { tx?: { dropped?: number }; rx?: { dropped?: number } } }>) {
        const o = (out[role] ??= { tx: 0, rx: 0 });
        o.tx += l.stats64?.tx?.dropped ?? 0;
        o.rx += l.stats64?.rx?.dropped ?? 0;
      }
    } catch {}
  }
  return out;
}

function threadsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

async function ping(from: Host, addr: string, count: number): Promise<Rtt> {
  const r = await from.exec(['ping', '-n', '-c', String(count), '-i', '0.05', '-W', '2', addr], (count * 0.05 + 10) * 1000);
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (!times.length) throw new Error(`ping ${addr}: no reply: ${(r.stdout + r.stderr).trim().split('\n').slice(-2).join(' ')}`);
  return {
    median: round(median(times), 3),
    avg: round(times.reduce((s, x) => s + x, 0) / times.length, 3),
    min: round(Math.min(...times), 3),
    p90: round(quantile(times, 0.9), 3),
    count,
    lost: count - times.length,
  };
}

/** Waits until `addr` answers a ping from `from` (a tunnel may need a handshake first). */
async function reachable(from: Host, addr: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await from.ping(addr, 1, 1))) {
    if (Date.now() > end) throw new Error(`${addr} does not answer pings from ${from.name}`);
  }
}

interface Iperf {
  gbps: number;
  retransmits: number;
}

/** One iperf3 TCP stream from `client` to `server` at `addr`; samples CPU of `procs` meanwhile. */
async function iperf(
  s: Star,
  addr: string,
  o: TunOptions,
  up: PathUp,
  during?: (seconds: number) => void,
): Promise<Iperf & { cpu: PathSample['cpu']; machine: PathSample['machine']; background: Background }> {
  const srv = s.c2.spawn('iperf3-server', ['iperf3', '-s', '-1', '-p', '5201', '--forceflush']);
  try {
    for (let i = 0; !srv.output.some((l) => /Server listening/.test(l)); i++) {
      if (i > 200 || srv.exitCode !== null) throw new Error(`iperf3 -s did not start: ${srv.tail()}`);
      await sleep(25);
    }
    const pids = Object.entries(up.procs);
    // CPU is sampled over the measured seconds only, after the omitted slow start.
    const client = s.c1.exec(['iperf3', '-c', addr, '-p', '5201', '-t', String(o.seconds), '-O', String(o.omit), '-J'], (o.seconds + o.omit + 30) * 1000);
    await sleep(o.omit * 1000 + 100);
    const t0 = Date.now();
    const before = pids.map(([, p]) => procTimes(p.pid));
    const sys0 = systemTimes();
    const bg = backgroundSampler();
    during?.(o.seconds - 0.5);
    // The measured part ends o.seconds later; sample just before it does.
    await sleep(o.seconds * 1000 - 300);
    const after = pids.map(([, p]) => procTimes(p.pid));
    const sys1 = systemTimes();
    const background = bg.until();
    const wall = (Date.now() - t0) / 1000;
    const r = await client;
    let j: any;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 -c ${addr} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    }
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const cpu: PathSample['cpu'] = {};
    pids.forEach(([role], i) => (cpu[role] = cpuShare(before[i], after[i], wall)));
    return {
      gbps: round(j.end.sum_received.bits_per_second / 1e9, 3),
      retransmits: j.end.sum_sent.retransmits ?? 0,
      cpu,
      machine: systemShare(sys0, sys1),
      background,
    };
  } finally {
    await srv.stop('SIGTERM', 2000);
  }
}

interface PathSpec {
  id: string;
  label: string;
  kind: PathResult['kind'];
  mtu: number;
  up: () => Promise<PathUp>;
}

async function measureOnce(s: Star, spec: PathSpec, o: TunOptions, round: number): Promise<PathSample> {
  const res: PathSample = { gbps: null, retransmits: null, rtt: null, cpu: {}, machine: null, background: null, quiet: null };
  const t0 = Date.now();
  let up: PathUp | null = null;
  try {
    up = await spec.up();
    await reachable(s.c1, up.target);
    res.quiet = await waitQuiet();
    res.rtt = await ping(s.c1, up.target, o.pings);
    const before = up.counters ? await up.counters() : null;
    const r = await iperf(s, up.target, o, up);
    const after = up.counters ? await up.counters() : null;
    res.rttAfter = await ping(s.c1, up.target, o.pings);
    res.tunDrops = await tunDrops(s);
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
  const cpu = Object.entries(res.cpu)
    .map(([k, v]) => `${k} ${v ? Math.round(v.total * 100) : '?'}%`)
    .join(', ');
  const bg = res.background && res.background.cores >= 0.05 ? `; others used ${Math.round(res.background.cores * 100)}% of a core` : '';
  const dropped = res.server ? Object.values(res.server.drops).reduce((a, b) => a + b, 0) : 0;
  let drops = dropped ? `; server dropped ${dropped} of ${res.server!.received} packets (${Object.keys(res.server!.drops).join(', ')})` : '';
  for (const [role, d] of Object.entries(res.clients ?? {})) if (d.socket + d.tun > 0) drops += `; ${role} dropped ${d.socket} (socket full) + ${d.tun} (tun full)`;
  for (const [role, d] of Object.entries(res.tunDrops ?? {})) if (d.tx + d.rx > 0) drops += `; ${role}'s tun device dropped ${d.tx} (tx) + ${d.rx} (rx)`;
  const took = ` [${Math.round((Date.now() - t0) / 100) / 10} s${res.quiet && res.quiet.waitedMs > 1000 ? `, ${Math.round(res.quiet.waitedMs / 1000)} s waiting for quiet` : ''}]`;
  o.log(
    res.error
      ? `  [${round}] ${spec.label}: FAILED: ${res.error.split('\n')[0]}${took}`
      : `  [${round}] ${spec.label}: ${res.gbps} Gbit/s, RTT median ${res.rtt?.median} ms fresh, ${res.rttAfter?.median} ms after the transfer${cpu ? ` (CPU ${cpu})` : ''}${drops}${bg}${took}`,
  );
  return res;
}

/** The best transfer and the lowest median RTT over the rounds: the least disturbed ones. */
function combine(spec: PathSpec, runs: PathSample[]): PathResult {
  const ok = runs.filter((r) => r.gbps !== null);
  const best = ok.length ? ok.reduce((a, b) => (b.gbps! > a.gbps! ? b : a)) : runs[runs.length - 1];
  const withRtt = runs.filter((r) => r.rtt !== null);
  const rtt = withRtt.length ? withRtt.reduce((a, b) => (b.rtt!.median < a.rtt!.median ? b : a)).rtt : null;
  const withAfter = runs.filter((r) => r.rttAfter);
  const rttAfter = withAfter.length ? withAfter.reduce((a, b) => (b.rttAfter!.median < a.rttAfter!.median ? b : a)).rttAfter : null;
  const res: PathResult = { id: spec.id, label: spec.label, kind: spec.kind, mtu: spec.mtu, ...best, rtt, rttAfter, runs };
  if (ok.length) delete res.error;
  return res;
}

/** simplevpn under the profilers: node --cpu-prof on server and clients, perf on the machine. */
async function profileRun(s: Star, mtu: number, o: TunOptions, usePerf: boolean): Promise<ProfileRun> {
  const run: ProfileRun = { mtu, gbps: null, processes: {}, perf: null };
  const dir = o.profileDir;
  mkdirSync(dir, { recursive: true });
  const tag = `mtu${mtu}`;
  let up: PathUp | null = null;
  let perf: ReturnType<typeof perfRecord> | null = null;
  const perfFile = join(dir, `perf-${tag}.data`);
  try {
    up = await simplevpnPath(s, { mtu, profileDir: dir, tag });
    await reachable(s.c1, up.target);
    await waitQuiet();
    const r = await iperf(s, up.target, o, up, usePerf ? (sec) => (perf = perfRecord(perfFile, Math.max(1, Math.floor(sec)))) : undefined);
    run.gbps = r.gbps;
    // perf names threads: every thread of each program (V8 and libuv helpers too) by role.
    const roles = new Map<number, string>([[process.pid, 'bench harness']]);
    for (const [role, p] of Object.entries(up.procs)) {
      roles.set(p.pid, `simplevpn ${role}`);
      for (const tid of threadsOf(p.pid)) if (tid !== p.pid) roles.set(tid, `simplevpn ${role} (helper thread)`);
    }
    await up.stop();
    up = null;
    if (perf) {
      await (perf as { done: Promise<void> }).done;
      run.perf = perfSummarize(perfFile, Math.max(1, Math.floor(o.seconds - 0.5)), roles);
    }
    for (const role of ['server', 'client1', 'client2']) {
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

export async function tunSection(o: TunOptions): Promise<TunResult> {
  const result: TunResult = { rounds: o.rounds, seconds: o.seconds, omit: o.omit, pings: o.pings, paths: [], bestMtu: null, profiles: [], notes: [] };
  const s = await star();
  let pki: Pki | null = null;
  try {
    const specs: PathSpec[] = [{ id: 'raw', label: 'raw routed path (no tunnel)', kind: 'raw', mtu: 1500, up: () => rawPath(s) }];
    if (o.missing['wireguard-go']) result.notes.push(`wireguard-go not measured: ${o.missing['wireguard-go']}`);
    else specs.push({ id: 'wireguard-go', label: 'wireguard-go (UDP, ChaCha20-Poly1305)', kind: 'wireguard-go', mtu: 1420, up: () => wireguardGoPath(s) });
    if (o.missing.openvpn) result.notes.push(`OpenVPN not measured: ${o.missing.openvpn}`);
    else {
      try {
        pki = new Pki();
        const p = pki;
        specs.push({ id: 'openvpn-aes-256-gcm', label: 'OpenVPN 2.6 TCP, AES-256-GCM', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'aes-256-gcm') });
        specs.push({ id: 'openvpn-none', label: 'OpenVPN 2.6 TCP, no cipher', kind: 'openvpn', mtu: 1500, up: () => openvpnPath(s, p, 'none') });
      } catch (e) {
        result.notes.push(`OpenVPN not measured: the throwaway PKI could not be made: ${errorText(e)}`);
      }
    }
    for (const mtu of o.mtus) {
      specs.push({ id: `simplevpn-${mtu}`, label: `simplevpn, tunnel MTU ${mtu}`, kind: 'simplevpn', mtu, up: () => simplevpnPath(s, { mtu }) });
    }
    // Rounds are interleaved, so a burst of load from elsewhere spoils one sample of a path
    // rather than all of them, and best-of-rounds compares like with like.
    // After the first round, the MTU sweep is narrowed to 1500 and the best raised MTU.
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
          if (sp.kind === 'simplevpn' && sp.mtu > 1500 && g != null && g > best) {
            best = g;
            sweepBest = sp.mtu;
          }
        });
      }
    }
    result.paths = specs.map((spec, i) => combine(spec, runs[i]));
    const raised = result.paths.filter((p) => p.kind === 'simplevpn' && p.mtu > 1500 && p.gbps !== null);
    raised.sort((a, b) => b.gbps! - a.gbps!);
    result.bestMtu = raised[0]?.mtu ?? null;
    if (o.profile) {
      const usePerf = perfUsable();
      if (!usePerf) result.notes.push('perf is not usable here: profiles are node --cpu-prof only');
      const mtus = [1500, ...(result.bestMtu ? [result.bestMtu] : [])];
      for (const mtu of mtus) result.profiles.push(await profileRun(s, mtu, o, usePerf));
    }
  } finally {
    await s.lab.destroy();
    pki?.remove();
  }
  return result;
}
