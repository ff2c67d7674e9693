// Helpers for test/integration/commands.test.ts: the fenced blocks of the docs, and a
// sandbox that runs their command lines as printed, each in a network namespace of its own.
//
// The sandbox keeps everything a command does off this machine:
//   - network: a namespace with only loopback (and whatever addresses the test puts on it),
//     and an /etc/hosts of its own (iproute2 bind-mounts /etc/netns/NAME/hosts over
//     /etc/hosts for `ip netns exec`) that maps the docs' host names to loopback;
//   - files: `ip netns exec` runs the command in a mount namespace of its own, where the
//     sandbox lays overlays over npm's global folders (what `sudo npm install -g .` wrote,
//     kept in the sandbox's directory) and, for commands that write into the checkout, over
//     the checkout itself, with the writes in a tmpfs that goes away with the command.
// Names carry this process's pid; leftovers of a run that died are swept by the next one.
// Everything is removed by cleanup(), which also runs on exit and on SIGINT/SIGTERM.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupOnExit } from '../support/exit-cleanup.js';

export const ROOT = new URL('../../../../', import.meta.url).pathname.replace(/\/$/, ''); // dist/js/test/integration -> repo
export const SERVER_BIN = join(ROOT, 'dist/bin/simplevpn-server.js');
export const CLIENT_BIN = join(ROOT, 'dist/bin/simplevpn-client.js');
const NS_PREFIX = 'svpncmd';
const DIR_PREFIX = 'svpn-cmd-';
/** sudo's secure_path in Debian's default sudoers, used by the stand-in where sudo is missing. */
export const DEBIAN_SECURE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// ---- the docs --------------------------------------------------------------------------

export interface Fence {
  file: string; // relative to the repo
  line: number; // of the opening fence, from 1
  lang: string; // the info string's first word, '' when none
  lines: { line: number; text: string }[];
}

/** The fenced code blocks of a Markdown file (``` or ~~~, indented or not). */
export function fences(file: string): Fence[] {
  const text = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const out: Fence[] = [];
  let open: { fence: Fence; marker: string } | null = null;
  text.forEach((raw, i) => {
    if (!open) {
      const m = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/.exec(raw);
      if (m) open = { fence: { file, line: i + 1, lang: m[2]!.toLowerCase(), lines: [] }, marker: m[1]! };
      return;
    }
    const close = /^\s*(`{3,}|~{3,})\s*$/.exec(raw);
    if (close && close[1]![0] === open.marker[0] && close[1]!.length >= open.marker.length) {
      out.push(open.fence);
      open = null;
      return;
    }
    open.fence.lines.push({ line: i + 1, text: raw });
  });
  if (open) throw new Error(`${file}:${(open as { fence: Fence }).fence.line}: a fence that is never closed`);
  return out;
}

export const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console', 'zsh']);

export interface DocLine {
  file: string;
  line: number;
  /** The line as printed (continuation lines joined), trailing comment included. */
  text: string;
  /** The command without its trailing comment: the key the test's table uses. */
  command: string;
}

/** Every command line of the shell fences of `files`. */
export function shellLines(files: string[]): DocLine[] {
  const out: DocLine[] = [];
  for (const file of files) {
    for (const f of fences(file)) {
      if (!SHELL_LANGS.has(f.lang)) continue;
      let pending: { line: number; text: string } | null = null;
      for (const l of f.lines) {
        const t = l.text.trim();
        if (!pending && (t === '' || t.startsWith('#'))) continue;
        const joined: { line: number; text: string } = pending ? { line: pending.line, text: pending.text + '\n' + l.text } : { line: l.line, text: t };
        if (t.endsWith('\\')) {
          pending = joined;
          continue;
        }
        pending = null;
        out.push({ file, line: joined.line, text: joined.text, command: commandOf(joined.text) });
      }
      if (pending) out.push({ file, line: pending.line, text: pending.text, command: commandOf(pending.text) });
    }
  }
  return out;
}

/** A line without its trailing shell comment, whitespace collapsed. */
export function commandOf(text: string): string {
  return text
    .replace(/\\\n/g, ' ')
    .replace(/(^|\s)#.*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * The lines of the "Examples:" section of `bin --help`, as DocLines whose file is
 * "NAME --help" and whose line is the line of the help text.
 */
export function helpLines(bin: string, name: string): DocLine[] {
  const r = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${name} --help: exit ${r.status}: ${r.stderr || r.error}`);
  const lines = r.stdout.split('\n');
  const at = lines.findIndex((l) => /^Examples?:/.test(l));
  const out: DocLine[] = [];
  if (at < 0) return out;
  for (let i = at + 1; i < lines.length && lines[i]!.trim(); i++) {
    const text = lines[i]!.trim();
    out.push({ file: `${name} --help`, line: i + 1, text, command: commandOf(text) });
  }
  return out;
}

/** README.md, every docs/*.md and examples/README.md, relative to the repo. */
export function docFiles(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((n) => n.endsWith('.md'))
    .sort()
    .map((n) => `docs/${n}`);
  return ['README.md', ...docs, 'examples/README.md'];
}

// ---- where it can run ------------------------------------------------------------------

const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Why the commands cannot run here, or null when they can. */
export function unavailable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root (network and mount namespaces need it)';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 (ip) is not installed';
  if (!onPath('openssl')) return 'openssl is not installed';
  if (!existsSync(join(ROOT, 'linux/native/build/Release/simplevpn_tun.node'))) return 'the native TUN binding is not built (npm install builds it)';
  if (!existsSync(SERVER_BIN) || !existsSync(CLIENT_BIN)) return 'the CLIs are not built (node build.mjs)';
  if (!/\boverlay\b/.test(readFileSync('/proc/filesystems', 'utf8')) && spawnSync('modprobe', ['overlay']).status !== 0) return 'no overlay filesystem';
  return null;
}

// ---- processes -------------------------------------------------------------------------

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A command running in a namespace, in a process group of its own (as a shell's job is). */
export class Job {
  output = '';
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;
  private waiters: Array<() => void> = [];

  constructor(
    readonly what: string,
    readonly child: ChildProcess,
  ) {
    const onData = (d: Buffer) => {
      this.output += d.toString();
      if (process.env.COMMANDS_VERBOSE) process.stderr.write(`[${what}] ${d}`);
      for (const w of this.waiters.splice(0)) w();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const w of this.waiters.splice(0)) w();
        resolve(this.exit);
      }),
    );
    jobs.add(this);
    void this.exited.then(() => jobs.delete(this));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first match of `re` in the output; rejects on exit or after `ms`. */
  waitFor(re: RegExp, ms: number): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.output);
        if (m) {
          clearTimeout(timer);
          return resolve(m);
        }
        if (this.exit) {
          clearTimeout(timer);
          return reject(new Error(`${this.what}: exited (${this.exit.code ?? this.exit.signal}) before printing ${re}:\n${this.tail()}`));
        }
        this.waiters.push(check);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`${this.what}: did not print ${re} within ${ms} ms:\n${this.tail()}`));
      }, ms);
      check();
    });
  }

  /** Sends `sig` to the leader only, or to the whole process group as a terminal's Ctrl-C does. */
  signal(sig: NodeJS.Signals, to: 'group' | 'leader'): void {
    if (this.exit) return;
    try {
      process.kill(to === 'group' ? -this.pid : this.pid, sig);
    } catch {}
  }

  /** Waits for the exit, at most `ms`; then kills the group and says so. */
  async waitExit(ms: number): Promise<Exit & { killed: boolean }> {
    let killed = false;
    const t = setTimeout(() => {
      killed = true;
      this.signal('SIGKILL', 'group');
    }, ms);
    const r = await this.exited;
    clearTimeout(t);
    return { ...r, killed };
  }

  kill(): void {
    this.signal('SIGKILL', 'group');
  }

  tail(n = 25): string {
    return this.output.split('\n').slice(-n).join('\n');
  }
}

const jobs = new Set<Job>();

// ---- the sandbox -----------------------------------------------------------------------

export interface NsOptions {
  /** Host names to map to 127.0.0.1 in the namespace's /etc/hosts. */
  hosts?: string[];
  /** Extra addresses (CIDR) on the namespace's loopback, e.g. a documentation address. */
  addresses?: string[];
}

export interface RunOptions {
  /** Working directory, as the doc says (the clone, or a directory with the files a line names). */
  cwd: string;
  /**
   * 'install': the global npm folders are writable (their writes kept in the sandbox) and so
   * is the checkout (writes discarded). 'repo': the checkout is writable (writes discarded).
   * 'plain': nothing is writable beyond what the machine allows, the global folders show
   * what the install wrote.
   */
  mode?: 'install' | 'repo' | 'plain';
}

function sh(args: string[], ms = 15_000, env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8', timeout: ms, env });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
  return r.stdout;
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export class Namespace {
  readonly jobs: Job[] = [];
  constructor(
    readonly sandbox: Sandbox,
    readonly name: string,
  ) {}

  /** Runs `line` as printed, through bash, in this namespace: a job in a process group of its own. */
  run(line: string, o: RunOptions): Job {
    const mode = o.mode ?? 'plain';
    const script = [...this.sandbox.mountScript(mode), `cd ${q(o.cwd)}`, 'set +e', 'exec bash -c "$1"'].join('\n');
    const child = spawn('ip', ['netns', 'exec', this.name, 'bash', '-ec', script, 'svpn-doc-line', line], {
      cwd: o.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.sandbox.env,
    });
    const job = new Job(line, child);
    this.jobs.push(job);
    return job;
  }

  /** Starts a program of the test's own (a fixture), not a documented line. */
  spawn(what: string, argv: string[], cwd = ROOT): Job {
    const child = spawn('ip', ['netns', 'exec', this.name, ...argv], { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: this.sandbox.env });
    const job = new Job(what, child);
    this.jobs.push(job);
    return job;
  }

  /** Runs a short command of the test's own in this namespace, bounded. */
  exec(argv: string[], ms = 15_000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.name, ...argv], { encoding: 'utf8', timeout: ms, env: this.sandbox.env });
    return { code: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  }

  /** Processes in the namespace, by pid. */
  pids(): number[] {
    const r = spawnSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8', timeout: 5000 });
    return (r.stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
  }

  /** Network devices in the namespace. */
  links(): string[] {
    const r = spawnSync('ip', ['-n', this.name, '-j', 'link', 'show'], { encoding: 'utf8', timeout: 5000 });
    try {
      return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
    } catch {
      return [];
    }
  }

  destroy(): void {
    for (const j of this.jobs) j.kill();
    const pids = this.pids();
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
    spawnSync('ip', ['netns', 'del', this.name], { timeout: 10_000 });
    rmSync(`/etc/netns/${this.name}`, { recursive: true, force: true });
    this.sandbox.namespaces.delete(this);
  }
}

export class Sandbox {
  readonly dir: string;
  /** npm's global prefix, whose bin/ and lib/node_modules/ a global install writes. */
  readonly prefix: string;
  readonly env: NodeJS.ProcessEnv;
  /** Whether sudo is installed; where it is not, a stand-in with its secure_path is on PATH. */
  readonly realSudo: boolean;
  installed = false;
  readonly namespaces = new Set<Namespace>();
  private count = 0;
  private scratch = 0;
  private readonly forget: () => void;

  constructor() {
    sweepStale();
    this.dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    this.forget = cleanupOnExit(() => this.cleanup());
    // The environment of a user's shell: nothing npm put there for this test run.
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && !['INIT_CWD', 'NODE', 'NODE_OPTIONS', 'NO_COLOR'].includes(k)) env[k] = v;
    // Nor a proxy of the machine's: the client would take it (the README says so), and the
    // lines that use a proxy name theirs.
    for (const k of Object.keys(env)) if (/^(https?|all|no)_proxy$/i.test(k)) delete env[k];
    // npm run puts node_modules/.bin directories first on PATH; a user's shell has none.
    env.PATH = (env.PATH ?? DEBIAN_SECURE_PATH)
      .split(':')
      .filter((d) => d && !d.includes('/node_modules/'))
      .join(':');
    this.realSudo = onPath('sudo');
    if (!this.realSudo) {
      // Root already, so what sudo would change is PATH: it searches its secure_path.
      mkdirSync(join(this.dir, 'shim'));
      writeFileSync(join(this.dir, 'shim/sudo'), `#!/bin/sh\n# stand-in for sudo(8), which is not installed: root already, run with sudo's PATH\nexec env PATH=${DEBIAN_SECURE_PATH} "$@"\n`, { mode: 0o755 });
      env.PATH = `${env.PATH}:${join(this.dir, 'shim')}`;
    }
    this.env = env;
    this.prefix = sh(['npm', 'prefix', '-g'], 30_000, env).trim();
    for (const d of ['bin-up', 'bin-work', 'lib-up', 'lib-work']) mkdirSync(join(this.dir, 'global', d), { recursive: true });
  }

  /** A directory of the test's own inside the sandbox. */
  mkdir(name: string): string {
    const d = join(this.dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  }

  /** The mounts that start a command's script, run inside its mount namespace. */
  mountScript(mode: 'install' | 'repo' | 'plain'): string[] {
    const g = join(this.dir, 'global');
    const bin = join(this.prefix, 'bin');
    const lib = join(this.prefix, 'lib/node_modules');
    const out: string[] = [];
    if (mode === 'install') {
      out.push(`mount -t overlay svpn-doc -o lowerdir=${bin},upperdir=${g}/bin-up,workdir=${g}/bin-work ${bin}`);
      out.push(`mount -t overlay svpn-doc -o lowerdir=${lib},upperdir=${g}/lib-up,workdir=${g}/lib-work ${lib}`);
    } else if (this.installed) {
      out.push(`mount -t overlay svpn-doc -o lowerdir=${g}/bin-up:${bin} ${bin}`);
      out.push(`mount -t overlay svpn-doc -o lowerdir=${g}/lib-up:${lib} ${lib}`);
    }
    if (mode !== 'plain') {
      const t = join(this.dir, `repo-${++this.scratch}`);
      mkdirSync(t);
      out.push(`mount -t tmpfs svpn-doc ${t}`, `mkdir ${t}/up ${t}/work`);
      out.push(`mount -t overlay svpn-doc -o lowerdir=${ROOT},upperdir=${t}/up,workdir=${t}/work ${ROOT}`);
    }
    return out;
  }

  /** A fresh namespace: loopback up, the given addresses on it, the given names mapped to it. */
  namespace(o: NsOptions = {}): Namespace {
    const name = `${NS_PREFIX}-${process.pid}-${++this.count}`;
    const ns = new Namespace(this, name);
    this.namespaces.add(ns);
    mkdirSync(`/etc/netns/${name}`, { recursive: true });
    let hosts = '';
    try {
      hosts = readFileSync('/etc/hosts', 'utf8');
    } catch {}
    if (hosts && !hosts.endsWith('\n')) hosts += '\n';
    hosts += (o.hosts ?? []).map((h) => `127.0.0.1\t${h}\n`).join('');
    writeFileSync(`/etc/netns/${name}/hosts`, hosts);
    sh(['ip', 'netns', 'add', name]);
    sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    for (const a of o.addresses ?? []) sh(['ip', '-n', name, 'addr', 'add', a, 'dev', 'lo']);
    return ns;
  }

  cleanup(): void {
    for (const ns of [...this.namespaces]) ns.destroy();
    for (const j of jobs) j.kill();
    rmSync(this.dir, { recursive: true, force: true });
    this.forget();
  }
}


const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Removes the namespaces, /etc/netns entries and directories of runs whose process is gone. */
function sweepStale(): void {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '';
  for (const name of listed.split('\n').map((l) => l.split(' ')[0]!)) {
    const m = new RegExp(`^${NS_PREFIX}-(\\d+)-\\d+$`).exec(name);
    if (!m || alive(+m[1]!)) continue;
    const pids = (spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8', timeout: 5000 }).stdout ?? '').split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(+p, 'SIGKILL');
      } catch {}
    }
    spawnSync('ip', ['netns', 'del', name], { timeout: 10_000 });
  }
  try {
    for (const name of readdirSync('/etc/netns')) {
      const m = new RegExp(`^${NS_PREFIX}-(\\d+)-\\d+$`).exec(name);
      if (m && !alive(+m[1]!)) rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    }
  } catch {}
  for (const name of readdirSync(tmpdir())) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (m && !alive(+m[1]!)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}

// ---- fixtures --------------------------------------------------------------------------

/** A CA (ca.pem) and a server certificate for `name` signed by it, made with openssl in `dir`. */
export function makeCerts(dir: string, name: string): { ca: string; cert: string; key: string } {
  const ssl = (args: string[]) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
  };
  const keygen = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  ssl(['req', '-x509', ...keygen, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=svpn-doc-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`);
  ssl(['req', ...keygen, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${name}`]);
  ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext']);
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') };
}

/** The node flags a CLI's first line asks for (`#!/usr/bin/env -S node FLAGS`). */
export function nodeFlags(bin: string): string[] {
  const first = readFileSync(bin, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return m ? m[1]!.trim().split(/\s+/) : [];
}

/** Polls `cond` until true, or throws after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms: number, every = 100): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
