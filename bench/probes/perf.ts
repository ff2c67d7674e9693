// A machine-wide CPU profile with Linux perf during a transfer: where both cores go, by
// process (named by role when the bench started it) and by kernel or user-space symbol.
// Optional: used when `perf` is installed and allowed here; the bench does not install it.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';

export function perfUsable(): boolean {
  const r = spawnSync('perf', ['stat', '-e', 'cpu-clock', '-x,', 'true'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0;
}

export interface PerfRow {
  pct: number;
  who: string;
  what: string;
}

export interface PerfSummary {
  seconds: number;
  /** Share of all samples (both cores) by process and object (kernel, node, libc...). */
  byProcess: PerfRow[];
  /** The hottest symbols, kernel ([k]) and user space ([.]). */
  bySymbol: PerfRow[];
}

/** Records every CPU for `seconds` into `file`; resolves when perf has written it. */
export function perfRecord(file: string, seconds: number): { done: Promise<void>; child: ChildProcess } {
  const child = spawn('perf', ['record', '-a', '-F', '499', '-q', '-o', file, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
  const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { done, child };
}

function report(file: string, sort: string, limit: number): string[] {
  const r = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', sort, '--percent-limit', String(limit), '-q'], {
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 << 20,
  });
  return (r.stdout ?? '').split('\n').filter((l) => /^\s*[\d.]+%/.test(l));
}

/** Summarises `file`, naming processes by `roles` (pid -> role); removes the file. */
export function perfSummarize(file: string, seconds: number, roles: Map<number, string>, top = 15): PerfSummary {
  const name = (pidComm: string) => {
    const m = /^(\d+):(.*)$/.exec(pidComm);
    if (!m) return pidComm;
    const role = roles.get(Number(m[1]));
    return role ? `${role}` : m[2] === 'swapper' ? 'idle (swapper)' : m[2];
  };
  const parse = (lines: string[]): PerfRow[] =>
    lines.map((l) => {
      const m = /^\s*([\d.]+)%\s+(\S+)\s+(.*?)\s*$/.exec(l)!;
      return { pct: Number(m[1]), who: name(m[2]), what: m[3] };
    });
  // Merge rows of unnamed processes (iperf3 instances, kernel threads) by name.
  const merge = (rows: PerfRow[]) => {
    const m = new Map<string, PerfRow>();
    for (const r of rows) {
      const k = r.who + '\u0000' + r.what;
      const cur = m.get(k);
      if (cur) cur.pct = Math.round((cur.pct + r.pct) * 100) / 100;
      else m.set(k, { ...r });
    }
    return [...m.values()].sort((a, b) => b.pct - a.pct);
  };
  const byProcess = merge(parse(report(file, 'pid,dso', 0.5))).slice(0, top);
  const bySymbol = merge(parse(report(file, 'pid,sym', 0.3)))
    .filter((r) => !r.who.startsWith('idle'))
    .slice(0, top);
  rmSync(file, { force: true });
  rmSync(file + '.old', { force: true });
  return { seconds, byProcess, bySymbol };
}
