// The network measurements of the TUN section, between hosts of the lab: ping RTT, one
// iperf3 TCP stream with the CPU of the path's programs sampled over its measured seconds,
// and the drop counters of tun devices.

import type { Host, Proc } from '../../test/support/lab.js';
import { median, quantile, round, sleep } from '../util.js';
import { type Background, type CpuShare, backgroundSampler, cpuShare, procTimes, systemShare, systemTimes } from './cpu.js';

export interface Rtt {
  /** Milliseconds over `count` echoes. */
  median: number;
  avg: number;
  min: number;
  p90: number;
  count: number;
  lost: number;
}

/** `count` echoes 50 ms apart from `from` to `addr`. */
export async function ping(from: Host, addr: string, count: number): Promise<Rtt> {
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
export async function reachable(from: Host, addr: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await from.ping(addr, 1, 1))) {
    if (Date.now() > end) throw new Error(`${addr} does not answer pings from ${from.name}`);
  }
}

export interface Transfer {
  gbps: number;
  retransmits: number;
  /** CPU of each of `procs` over the measured seconds, as a share of one core. */
  cpu: Record<string, CpuShare | null>;
  /** All cores over the same seconds (1 = all fully busy). */
  machine: ReturnType<typeof systemShare>;
  /** CPU used meanwhile by processes that are not the bench's. */
  background: Background;
}

/**
 * One iperf3 TCP stream from `client` to an iperf3 server started in `server` (at `addr`),
 * `seconds` measured after `omit` seconds of slow start, sampling the CPU of `procs`
 * meanwhile. `during(seconds)` is called when the measured part starts (the profilers).
 */
export async function iperf(
  client: Host,
  server: Host,
  addr: string,
  t: { seconds: number; omit: number },
  procs: Record<string, Proc>,
  during?: (seconds: number) => void,
): Promise<Transfer> {
  const srv = server.spawn('iperf3-server', ['iperf3', '-s', '-1', '-p', '5201', '--forceflush']);
  try {
    for (let i = 0; !srv.output.some((l) => /Server listening/.test(l)); i++) {
      if (i > 200 || srv.exitCode !== null) throw new Error(`iperf3 -s did not start: ${srv.tail()}`);
      await sleep(25);
    }
    const pids = Object.entries(procs);
    // CPU is sampled over the measured seconds only, after the omitted slow start.
    const run = client.exec(['iperf3', '-c', addr, '-p', '5201', '-t', String(t.seconds), '-O', String(t.omit), '-J'], (t.seconds + t.omit + 30) * 1000);
    await sleep(t.omit * 1000 + 100);
    const t0 = Date.now();
    const before = pids.map(([, p]) => procTimes(p.pid));
    const sys0 = systemTimes();
    const bg = backgroundSampler();
    during?.(t.seconds - 0.5);
    // The measured part ends t.seconds later; sample just before it does.
    await sleep(t.seconds * 1000 - 300);
    const after = pids.map(([, p]) => procTimes(p.pid));
    const sys1 = systemTimes();
    const background = bg.until();
    const wall = (Date.now() - t0) / 1000;
    const r = await run;
    let j: any;
    try {
      j = JSON.parse(r.stdout);
    } catch {
      throw new Error(`iperf3 -c ${addr} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`);
    }
    if (j.error) throw new Error(`iperf3: ${j.error}`);
    const cpu: Transfer['cpu'] = {};
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

/**
 * The drop counters of every tun device (wireguard-go's too) in each of `hosts`, by role
 * (tx: queued for the program to read but its queue was full; rx: written by the program
 * but not taken).
 */
export async function tunDrops(hosts: Record<string, Host>): Promise<Record<string, { tx: number; rx: number }>> {
  const out: Record<string, { tx: number; rx: number }> = {};
  for (const [role, h] of Object.entries(hosts)) {
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
