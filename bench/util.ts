// Small helpers shared by the benchmark sections: time, process CPU from /proc, statistics,
// IPv4 packets with valid headers, and waiting on a program's plain-text output.

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { writeU32 } from '../protocol/index.js';
import type { Proc } from '../test/support/lab.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Clock ticks per second of /proc/PID/stat times. */
export const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export interface ProcTimes {
  /** Seconds of CPU in user and kernel mode since the process started. */
  user: number;
  sys: number;
  /** Resident set size, bytes. */
  rss: number;
}

/** CPU times and RSS of a process (and its threads), or null when it is gone. */
export function procTimes(pid: number): ProcTimes | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime 15, rss 24 (pages).
  return { user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK, rss: Number(f[21]) * 4096 };
}

/** CPU use of a process between two samples, as a share of one core (1 = 100 %). */
export interface CpuShare {
  user: number;
  sys: number;
  total: number;
}

export function cpuShare(a: ProcTimes | null, b: ProcTimes | null, seconds: number): CpuShare | null {
  if (!a || !b || seconds <= 0) return null;
  const user = (b.user - a.user) / seconds;
  const sys = (b.sys - a.sys) / seconds;
  return { user: round(user, 3), sys: round(sys, 3), total: round(user + sys, 3) };
}

/** Machine-wide CPU: jiffies by state, from the first line of /proc/stat. */
export function systemTimes(): { busy: number; total: number; user: number; sys: number; softirq: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq] = v;
  const total = v.slice(0, 8).reduce((s, x) => s + (x || 0), 0);
  return { busy: total - idle - (iowait || 0), total, user: user + nice, sys: system + (irq || 0), softirq: softirq || 0 };
}

/** Share of all cores busy between two samples (1 = every core busy), split by kind. */
export function systemShare(a: ReturnType<typeof systemTimes>, b: ReturnType<typeof systemTimes>): { busy: number; user: number; sys: number; softirq: number } {
  const t = b.total - a.total || 1;
  return {
    busy: round((b.busy - a.busy) / t, 3),
    user: round((b.user - a.user) / t, 3),
    sys: round((b.sys - a.sys) / t, 3),
    softirq: round((b.softirq - a.softirq) / t, 3),
  };
}

export function round(x: number, digits = 2): number {
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

/** True when `cmd` is on the PATH. */
export function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; timeout?: number } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, input: opts.input, timeout: opts.timeout ?? 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.error?.message || 'failed').trim()}`);
  return r.stdout;
}

/** Resolves when a line of `p`'s output matches `re` (from line `from` on); rejects on exit or after `ms`. */
export async function waitOutput(p: Proc, re: RegExp, ms = 15_000, from = 0): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    for (let i = from; i < p.output.length; i++) if (re.test(p.output[i])) return p.output[i];
    if (p.exitCode !== null || p.child.signalCode) throw new Error(`${p.name} exited (${p.exitCode ?? p.child.signalCode}) before printing ${re}:\n${p.tail()}`);
    if (Date.now() > end) throw new Error(`${p.name} did not print ${re} within ${ms} ms:\n${p.tail()}`);
    await sleep(25);
  }
}

/** The last JSON line of `p` with this event, waiting for one after line `from`. */
export async function waitEvent(p: Proc, event: string, ms = 15_000, from = 0): Promise<Record<string, any>> {
  return p.waitFor(event, () => true, ms, from);
}

/** The IPv4 header checksum of b[o..o+20). */
function headerChecksum(b: Uint8Array, o = 0): number {
  let sum = 0;
  for (let i = o; i < o + 20; i += 2) sum += (b[i] << 8) | b[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * Writes one IPv4/UDP packet of `size` bytes (at least 28) at b[o]: a valid header (version
 * 4, IHL 5, total length, TTL 64, checksum), UDP ports 9 -> 9 (discard), payload bytes.
 */
export function writeUdpPacket(b: Uint8Array, o: number, src: number, dst: number, size: number, id = 0): void {
  b.fill(0, o, o + size);
  b[o] = 0x45;
  b[o + 2] = size >> 8;
  b[o + 3] = size & 255;
  b[o + 4] = (id >> 8) & 255;
  b[o + 5] = id & 255;
  b[o + 6] = 0x40; // don't fragment
  b[o + 8] = 64;
  b[o + 9] = 17;
  writeU32(b, o + 12, src);
  writeU32(b, o + 16, dst);
  const c = headerChecksum(b, o);
  b[o + 10] = c >> 8;
  b[o + 11] = c & 255;
  // UDP: ports 9, length, checksum 0 (none).
  b[o + 21] = 9;
  b[o + 23] = 9;
  const ulen = size - 20;
  b[o + 24] = ulen >> 8;
  b[o + 25] = ulen & 255;
  for (let i = o + 28; i < o + size; i++) b[i] = i & 255;
}

export function udpPacket(src: number, dst: number, size: number, id = 0): Uint8Array {
  const b = new Uint8Array(size);
  writeUdpPacket(b, 0, src, dst, size, id);
  return b;
}

/** `count` packets of `size` back to back in one buffer, as a TCP stream carries them. */
export function packetBatch(src: number, dst: number, size: number, count: number): Uint8Array {
  const b = new Uint8Array(size * count);
  for (let i = 0; i < count; i++) writeUdpPacket(b, i * size, src, dst, size, i);
  return b;
}

/** A small deterministic PRNG (mulberry32), so every run uses the same packet mix. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function fmt(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toFixed(digits);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---- the rest of the machine -------------------------------------------------------------
// This machine has two cores, shared with whatever else runs on it. Every measurement
// reports how much CPU processes other than the bench's own used meanwhile, and waits for
// a quiet machine before it starts (bounded).

interface TaskSample {
  ppid: number;
  comm: string;
  cpu: number; // seconds, user + sys
}

function allTasks(): Map<number, TaskSample> {
  const out = new Map<number, TaskSample>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${n}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    out.set(Number(n), { ppid: Number(f[1]), comm, cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK });
  }
  return out;
}

export interface Background {
  /** CPU used by processes that are not the bench's, in cores (1 = one core busy). */
  cores: number;
  /** The busiest of them. */
  top: Array<{ pid: number; comm: string; cores: number }>;
}

/** Samples every process now; `.until()` later gives the CPU that others used in between. */
export function backgroundSampler(): { until(): Background } {
  const a = allTasks();
  const t0 = Date.now();
  return {
    until(): Background {
      const b = allTasks();
      const secs = (Date.now() - t0) / 1000 || 1;
      // Ours: this process, its parent (bench/run.mjs) and every descendant of this process.
      const ours = new Set<number>([process.pid, process.ppid]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const [pid, t] of b) {
          if (!ours.has(pid) && ours.has(t.ppid) && t.ppid !== process.ppid) {
            ours.add(pid);
            grew = true;
          }
        }
      }
      const rows: Background['top'] = [];
      let total = 0;
      for (const [pid, t] of b) {
        // Kernel threads (children of kthreadd) do the network work of the bench too.
        if (ours.has(pid) || pid === 2 || t.ppid === 2) continue;
        const before = a.get(pid);
        if (!before || before.comm !== t.comm) continue;
        const cores = (t.cpu - before.cpu) / secs;
        if (cores <= 0) continue;
        total += cores;
        rows.push({ pid, comm: t.comm, cores: round(cores, 3) });
      }
      rows.sort((x, y) => y.cores - x.cores);
      return { cores: round(total, 3), top: rows.slice(0, 3) };
    },
  };
}

/**
 * Waits until the machine is quiet (all cores together less than `threshold` cores busy
 * over a 500 ms sample), at most `maxMs`. Returns how busy it was, in cores, when it ended.
 */
export async function waitQuiet(maxMs = 8000, threshold = 0.15): Promise<{ waitedMs: number; busyCores: number }> {
  const t0 = Date.now();
  const n = availableParallelism();
  for (;;) {
    const a = systemTimes();
    await sleep(500);
    const busyCores = systemShare(a, systemTimes()).busy * n;
    if (busyCores < threshold || Date.now() - t0 >= maxMs) return { waitedMs: Date.now() - t0, busyCores: round(busyCores, 3) };
  }
}
