// CPU from /proc: of one process (and its RSS), of the whole machine, and of the processes
// that are not the bench's. This machine has two cores, shared with whatever else runs on
// it, so every measurement reports how much CPU others used meanwhile, and waits for a
// quiet machine before it starts (bounded).

import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { round, sleep } from '../util.js';

/** Clock ticks per second of /proc/PID/stat times. */
export const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

// ---- one process ---------------------------------------------------------------------------

export interface ProcTimes {
  /** Seconds of CPU in user and kernel mode since the process started. */
  user: number;
  sys: number;
  /** Resident set size, bytes. */
  rss: number;
}

interface Stat extends ProcTimes {
  ppid: number;
  comm: string;
}

/** The fields of /proc/PID/stat the bench reads, or null when the process is gone. */
function stat(pid: number | string): Stat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const close = text.lastIndexOf(')');
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15, rss 24 (pages).
  return { ppid: Number(f[1]), comm: text.slice(text.indexOf('(') + 1, close), user: Number(f[11]) / CLK_TCK, sys: Number(f[12]) / CLK_TCK, rss: Number(f[21]) * 4096 };
}

/** CPU times and RSS of a process (and its threads), or null when it is gone. */
export function procTimes(pid: number): ProcTimes | null {
  const s = stat(pid);
  return s && { user: s.user, sys: s.sys, rss: s.rss };
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

/** The thread ids of a process (perf samples name threads, not processes). */
export function threadsOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

// ---- the machine ---------------------------------------------------------------------------

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

// ---- everyone else -------------------------------------------------------------------------

/** Every process now, by pid. */
function allTasks(): Map<number, Stat> {
  const out = new Map<number, Stat>();
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const n of names) {
    const s = /^\d+$/.test(n) ? stat(n) : null;
    if (s) out.set(Number(n), s);
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
        const cores = (t.user + t.sys - before.user - before.sys) / secs;
        if (cores <= 0) continue;
        total += cores;
        rows.push({ pid, comm: t.comm, cores: round(cores, 3) });
      }
      rows.sort((x, y) => y.cores - x.cores);
      return { cores: round(total, 3), top: rows.slice(0, 3) };
    },
  };
}
