// A throwaway network of namespaces for end-to-end tests: hosts (network namespaces),
// veth links between them with addresses from 198.18.0.0/15 (RFC 2544's benchmarking
// range), and the programs under test running inside them.
//
// Names carry this process's pid, so parallel runs never collide, and a run that died
// without cleaning up is swept by the next one. Everything is removed in destroy(), and
// again on process exit, so a failing test leaves nothing behind. A file whose tests share
// one lab gets it, and its skipping where no lab can run, from useLab().

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Callback, Test } from 'uvu';

import { CLIENT_BIN, ROOT, SERVER_BIN } from './paths.js';
import { cleanupOnExit } from './exit-cleanup.js';

export { CLIENT_BIN, ROOT, SERVER_BIN };
const PREFIX = 'svpnt';

/**
 * The node flags a CLI asks for on its first line (`#!/usr/bin/env -S node FLAGS`), for
 * starting it as `node FLAGS bin` the way running the bin itself would.
 */
export function nodeFlags(bin: string): string[] {
  try {
    const first = readFileSync(bin, 'utf8').split('\n', 1)[0];
    const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
    return m ? m[1].trim().split(/\s+/) : [];
  } catch {
    return [];
  }
}

/** Why end-to-end tests cannot run here, or null when they can. */
export function e2eUnavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network namespaces need it)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (ip) is not installed';
  if (spawnSync('ping', ['-V']).status !== 0) return 'ping is not installed (apt-get install iputils-ping)';
  if (!existsSync(join(ROOT, 'linux/native/build/Release/simplevpn_tun.node'))) return 'the native TUN binding is not built (npm install builds it)';
  if (!existsSync(SERVER_BIN) || !existsSync(CLIENT_BIN)) return 'the CLIs are not built (node build.mjs)';
  return null;
}

function ip(args: string[]): string {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || r.error?.message || 'failed'}`);
  return r.stdout;
}

function deleteNamespace(ns: string): void {
  // Processes keep a namespace alive after its name is gone: end them first.
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 }).stdout?.trim();
  if (pids) spawnSync('kill', ['-KILL', ...pids.split(/\s+/)], { timeout: 5000 });
  spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
}

function ourNamespaces(): string[] {
  const out = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
  return out
    .split('\n')
    .map((l) => l.split(' ')[0])
    .filter((n) => n.startsWith(PREFIX + '-'));
}

/** Removes namespaces left by runs whose process is gone. */
function sweepStale(): void {
  for (const ns of ourNamespaces()) {
    const pid = Number(ns.split('-')[1]);
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {}
    if (!alive) deleteNamespace(ns);
  }
}


export interface LogLine {
  event: string;
  level: string;
  [k: string]: unknown;
}

/** A program running in a host, whose JSON log lines the test can wait on. */
export class Proc {
  readonly lines: LogLine[] = [];
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitCode: number | null = null;
  private waiters: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    let buf = '';
    const onText = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.output.push(line);
        if (process.env.E2E_VERBOSE) process.stderr.write(`[${name}] ${line}\n`);
        if (line.startsWith('{')) {
          try {
            this.lines.push(JSON.parse(line));
          } catch {}
        }
        for (const w of this.waiters.splice(0)) w();
      }
    };
    child.stdout?.on('data', onText);
    child.stderr?.on('data', onText);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        for (const w of this.waiters.splice(0)) w();
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (from `from` on) of `event` matching `match`. */
  waitFor(event: string, match: (l: LogLine) => boolean = () => true, ms = 15_000, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.lines.length; i++) {
          const l = this.lines[i];
          if (l.event === event && match(l)) {
            clearTimeout(timer);
            return resolve(l);
          }
        }
        if (this.exitCode !== null || this.child.signalCode) {
          clearTimeout(timer);
          return reject(new Error(`${this.name} exited (${this.exitCode ?? this.child.signalCode}) before logging ${event}:\n${this.tail()}`));
        }
        this.waiters.push(check);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`${this.name} did not log ${event} within ${ms} ms:\n${this.tail()}`));
      }, ms);
      check();
    });
  }

  tail(n = 20): string {
    return this.output.slice(-n).join('\n');
  }

  signal(sig: NodeJS.Signals): void {
    if (this.exitCode === null && !this.child.signalCode) this.child.kill(sig);
  }

  /** The exit, or a rejection after `ms` (the process is then killed). */
  exitWithin(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let t: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      t = setTimeout(() => {
        this.signal('SIGKILL');
        reject(new Error(`${this.name} did not exit within ${ms} ms:\n${this.tail()}`));
      }, ms);
    });
    return Promise.race([this.exited, timeout]).finally(() => clearTimeout(t));
  }

  /** Sends `sig` and waits (bounded) for the exit. */
  async stop(sig: NodeJS.Signals = 'SIGTERM', ms = 8000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.signal(sig);
    const t = setTimeout(() => this.signal('SIGKILL'), ms);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export class Host {
  readonly procs: Proc[] = [];
  constructor(
    readonly lab: Lab,
    readonly name: string,
    readonly ns: string,
  ) {}

  /** Runs a command in this host to completion, bounded by `ms`. */
  exec(argv: string[], ms = 30_000): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn('ip', ['netns', 'exec', this.ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => {
        stderr += `\n(killed after ${ms} ms)`;
        child.kill('SIGKILL');
      }, ms);
      child.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** Starts a long-running program in this host. */
  spawn(name: string, argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn('ip', ['netns', 'exec', this.ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const p = new Proc(name, child);
    this.procs.push(p);
    return p;
  }

  node(name: string, script: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Proc {
    return this.spawn(name, [process.execPath, ...nodeFlags(script), script, ...args], env);
  }

  server(args: string[] = []): Proc {
    return this.node('server', SERVER_BIN, ['--log-format', 'json', ...args]);
  }

  client(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
    return this.node(name, CLIENT_BIN, ['--log-format', 'json', ...args], env);
  }

  /**
   * The kernel's SNMP counters in this host (/proc/net/snmp is per namespace):
   * "Icmp.InCsumErrors" -> n. As root, ping reads a raw socket, which the kernel feeds before
   * it checks ICMP checksums, and ping does not check them either: these counters are the
   * judge of whether the replies were well formed.
   */
  async snmp(): Promise<Record<string, number>> {
    const r = await this.exec(['cat', '/proc/net/snmp'], 5000);
    const out: Record<string, number> = {};
    const lines = r.stdout.trim().split('\n');
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i].split(/\s+/);
      const values = lines[i + 1].split(/\s+/);
      const group = names[0].replace(':', '');
      for (let k = 1; k < names.length; k++) out[`${group}.${names[k]}`] = Number(values[k]);
    }
    return out;
  }

  /** `ping -c count` to `addr`; true when every echo got a reply. */
  async ping(addr: string, count = 3, waitS = 2): Promise<boolean> {
    const r = await this.exec(['ping', '-n', '-c', String(count), '-W', String(waitS), '-i', '0.2', addr], (count * 0.2 + waitS + 5) * 1000);
    return r.code === 0;
  }
}

export class Lab {
  readonly hosts: Host[] = [];
  readonly id: string;
  private links = 0;
  private destroyed = false;
  private readonly forget: () => void;

  constructor() {
    sweepStale();
    this.id = `${PREFIX}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
    this.forget = cleanupOnExit(() => this.destroySync());
  }

  host(name: string): Host {
    const ns = `${this.id}-${name}`;
    ip(['netns', 'add', ns]);
    const h = new Host(this, name, ns);
    this.hosts.push(h);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    return h;
  }

  /**
   * Joins two hosts with a veth pair on 198.18.K.0/24: `a` gets .1 and `b` gets .2.
   * Returns both addresses.
   */
  link(a: Host, b: Host, mtu = 1500): { a: string; b: string } {
    const k = ++this.links;
    const ifa = `veth${k}a`;
    const ifb = `veth${k}b`;
    ip(['link', 'add', ifa, 'netns', a.ns, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', ifb, 'netns', b.ns, 'mtu', String(mtu)]);
    const addrA = `198.18.${k}.1`;
    const addrB = `198.18.${k}.2`;
    ip(['-n', a.ns, 'addr', 'add', `${addrA}/24`, 'dev', ifa]);
    ip(['-n', b.ns, 'addr', 'add', `${addrB}/24`, 'dev', ifb]);
    ip(['-n', a.ns, 'link', 'set', ifa, 'up']);
    ip(['-n', b.ns, 'link', 'set', ifb, 'up']);
    return { a: addrA, b: addrB };
  }

  /**
   * A hub and its spokes: `hub` linked to each of `spokes` in turn, so spoke k (from 1)
   * reaches the hub at 198.18.k.1.
   */
  star(hub: string, ...spokes: string[]): Host[] {
    const h = this.host(hub);
    const s = spokes.map((name) => this.host(name));
    for (const x of s) this.link(h, x);
    return [h, ...s];
  }

  /** Stops every program (SIGTERM, then SIGKILL) and deletes every namespace. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await Promise.all(this.hosts.flatMap((h) => h.procs.map((p) => p.stop('SIGTERM', 3000))));
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const h of this.hosts) {
      for (const p of h.procs) p.signal('SIGKILL');
      deleteNamespace(h.ns);
    }
    this.forget();
  }

  /** Namespaces of this lab still present (for the test that checks cleanup). */
  remaining(): string[] {
    return ourNamespaces().filter((n) => n.startsWith(this.id));
  }
}

/** What a test file whose tests share one lab gets from useLab(). */
export interface SharedLab {
  /** `test`, or `test.skip` where the lab cannot run: the run then counts the tests as skipped, never as passed. */
  it: (name: string, fn: Callback) => void;
  /** The lab, made in test.before: for the tests that destroy it themselves or add to it. */
  lab(): Lab;
}

export interface SharedLabOptions {
  /** Why else this file cannot run (a program it needs is missing), or null; asked only where a lab can run. */
  alsoNeeds?: () => string | null;
  /** What the line printed where the tests are skipped says before the reason. */
  skipNote?: string;
  /** Removes what `build` made beside the lab (certificates, folders); runs in test.after once the lab is gone. */
  cleanUp?: () => void | Promise<void>;
}

/**
 * One lab shared by the tests of a file, in order: made in test.before, where `build` adds
 * its hosts and starts what every test relies on, and destroyed in test.after, which uvu
 * runs whether a test failed or `build` threw half-way (the namespaces made so far go too).
 * Where a lab cannot run here (e2eUnavailable(), then `alsoNeeds`), it says why and hands
 * back `test.skip`, and registers no hook.
 */
export function useLab(test: Test, build: (lab: Lab) => void | Promise<void>, options: SharedLabOptions = {}): SharedLab {
  const why = e2eUnavailable() ?? options.alsoNeeds?.() ?? null;
  let lab: Lab | undefined;
  const shared: SharedLab = {
    it: why ? test.skip : test,
    lab: () => {
      if (!lab) throw new Error('the lab does not exist yet: it is made in test.before, so use lab() inside a test');
      return lab;
    },
  };
  if (why) {
    console.log(`${options.skipNote ?? 'e2e skipped'}: ${why}`);
    return shared;
  }
  test.before(async () => {
    lab = new Lab();
    try {
      await build(lab);
    } catch (err) {
      // uvu counts the file's tests as failed but prints nothing of an error in a hook.
      console.error(`the lab's set-up failed, so no test of this file ran: ${(err as Error)?.stack ?? err}`);
      throw err;
    }
  });
  test.after(async () => {
    try {
      await lab?.destroy();
    } finally {
      await options.cleanUp?.();
    }
  });
  return shared;
}

/** Polls `cond` every `every` ms until it is true, or rejects after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000, every = 100): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
