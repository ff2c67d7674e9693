// Command-line checks shared by simplevpn-server and simplevpn-client.

import { readFileSync } from 'node:fs';
import type { Level, LogFormat } from './log.js';

/**
 * The first option in mri's result that is neither a known long option nor a known short
 * alias, spelled as the user typed it (`--frobnicate`, `--no-frob`, `-x`), or null. mri
 * accepts anything, so this is where a mistyped flag becomes exit status 2 rather than a
 * silently ignored setting.
 *
 * It first gives negative numbers back to the flags they follow (see negativeValues), so
 * `--mtu -5` is a value for the range check to report rather than an unknown option -5.
 */
export function unknownOption(args: Record<string, unknown>, known: string[], argv: string[]): string | null {
  negativeValues(args, argv);
  const ok = new Set(known);
  for (const k of Object.keys(args)) {
    if (k === '_' || ok.has(k)) continue;
    const typed = argv.find((a) => a === `--${k}` || a === `--no-${k}` || a.startsWith(`--${k}=`) || a.startsWith(`--no-${k}=`));
    return typed ? typed.split('=')[0] : (k.length === 1 ? '-' : '--') + k;
  }
  return null;
}

const NEGATIVE = /^-(\d+\.?\d*|\.\d+)$/;

/**
 * mri reads a negative number after a flag as flags of its own: `--mtu -5` gives mtu ''
 * (no value) and 5 true. Where the flag before such a number takes a value (mri left ''
 * for it; a boolean flag is true and keeps the number as a stray option), this makes the
 * number that flag's value, in `args` and in its alias, and removes the stray flags, so
 * `--keepalive -1`, `-p -1` and `--port=-1` all mean the same. Edits `args` in place.
 *
 * mri does not say which keys are aliases: the alias of a one-letter flag is taken to be
 * the key that starts with that letter and was not typed itself, as in both CLIs (-p and
 * --port, -s and --server, -a and --address).
 */
export function negativeValues(args: Record<string, unknown>, argv: string[]): void {
  const stray = new Map<string, number>();
  for (let i = 0; i + 1 < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--') break;
    if (!NEGATIVE.test(value) || NEGATIVE.test(flag)) continue;
    const m = /^--([^=]+)$/.exec(flag) ?? /^-([^-=]+)$/.exec(flag);
    if (!m) continue;
    const name = flag.startsWith('--') ? m[1] : m[1].slice(-1);
    const cur = args[name];
    if (Array.isArray(cur)) {
      // Repeated flag: mri shares the array with the alias, so one change does for both.
      const at = cur.indexOf('');
      if (at < 0) continue;
      cur[at] = value;
    } else if (cur === '') {
      args[name] = value;
      for (const k of Object.keys(args)) {
        if (k === name || args[k] !== '' || typed(k, argv)) continue;
        if (name.length === 1 ? k.startsWith(name) : k.length === 1 && name.startsWith(k)) args[k] = value;
      }
    } else {
      continue;
    }
    for (const c of value.slice(1)) stray.set(c, (stray.get(c) ?? 0) + 1);
    i++;
  }
  for (const [c, n] of stray) {
    const v = args[c];
    const left = (Array.isArray(v) ? v.length : v === true ? 1 : 0) - n;
    if (left <= 0) delete args[c];
    else args[c] = left === 1 ? true : new Array(left).fill(true);
  }
}

/** `key` appears on the command line as itself: --key, --key=..., --no-key, or in -abc. */
function typed(key: string, argv: string[]): boolean {
  return argv.some((a) =>
    key.length === 1 ? /^-[^-]/.test(a) && !NEGATIVE.test(a) && a.split('=')[0].includes(key) : a === `--${key}` || a.startsWith(`--${key}=`) || a === `--no-${key}`,
  );
}

// ---- what both CLIs do with their flags -----------------------------------------------------

/** Ends the program for bad usage: one line naming the problem, one pointing at --help. */
export type Usage = (msg: string) => never;

/** The usage() of `program`: prints `program: msg` and the Try line on stderr, exits 2. */
export function usageFor(program: string): Usage {
  return (msg) => {
    process.stderr.write(`${program}: ${msg}\nTry '${program} --help' for the options.\n`);
    process.exit(2);
  };
}

/**
 * Checks the flags in `names` that take a value: each has one (mri leaves '' when such a flag
 * is last or followed by another flag), and only those in `repeatable` may be given more
 * than once.
 */
export function checkValues(usage: Usage, args: Record<string, unknown>, names: string[], repeatable: string[] = []): void {
  for (const k of names) {
    const v = args[k];
    if (v === '' || (Array.isArray(v) && v.includes(''))) usage(`--${k} needs a value`);
    if (Array.isArray(v) && !repeatable.includes(k)) usage(`--${k} given more than once`);
  }
}

/** The contents of the file a flag names, or bad usage saying why it cannot be read. */
export function readFlagFile(usage: Usage, flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err: any) {
    usage(`cannot read --${flag} ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
}

/** --log-format and --log-level, checked (text and info when not given). */
export function logOptions(usage: Usage, format: unknown = 'text', level: unknown = 'info'): { format: LogFormat; level: Level } {
  if (format !== 'text' && format !== 'json') usage(`--log-format must be text or json, got "${format}"`);
  if (!LEVELS.includes(level as Level)) usage(`--log-level must be debug, info, warn or error, got "${level}"`);
  return { format, level: level as Level };
}

const LEVELS: Level[] = ['debug', 'info', 'warn', 'error'];

/** Why `name` cannot name a network device (1 to 15 characters, no space, '/' or ':'), or null. */
export function tunNameProblem(name: unknown): string | null {
  const ok = typeof name === 'string' && name.length > 0 && name.length <= 15 && !/[\s/:]/.test(name);
  return ok ? null : `--tun must be a device name of 1 to 15 characters without spaces, '/' or ':', got "${name}"`;
}
