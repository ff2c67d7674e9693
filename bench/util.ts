// Small helpers every part of the bench uses: waiting, rounding and statistics, number
// formatting for the reports, error text, and running a command or waiting on a program's
// plain-text output (the JSON-logging programs have Proc.waitFor in the lab).

import { spawnSync } from 'node:child_process';
import type { Proc } from '../test/support/lab.js';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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

/** A number with `digits` decimals, or 'n/a' when there is none: what the reports print. */
export function fmt(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toFixed(digits);
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
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
