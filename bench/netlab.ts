// What the benchmarks need on top of the end-to-end lab (test/support/lab.ts): a place to
// run programs with or without root, node programs with V8 flags and a raised open-file
// limit, the fixtures' stdin questions, commands that must succeed, and the hub-and-spoke
// topology of the TUN section with the kernel routing. Namespaces, links and cleanup are
// the lab's own.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { type Host, Lab, type LogLine, Proc, ROOT, e2eUnavailable } from '../test/support/lab.js';

/** The compiled fixtures (bench/fixtures), the programs the sections start. */
export const FIXTURES = join(ROOT, 'dist/js/bench/fixtures');

/** Where programs run: a lab host (a namespace of its own) or, without root, this machine. */
export interface Place {
  readonly name: string;
  spawn(name: string, argv: string[], env?: NodeJS.ProcessEnv): Proc;
}

/** This machine's own network namespace (loopback only is used there). */
class LocalPlace implements Place {
  readonly name = 'local';
  readonly procs: Proc[] = [];
  spawn(name: string, argv: string[], env: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const p = new Proc(name, child);
    this.procs.push(p);
    return p;
  }
  async destroy(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop('SIGTERM', 3000)));
  }
}

/**
 * A namespace of its own with only loopback (a lab of one host) when namespaces can be made
 * here, else this machine: either way the traffic stays on loopback. A fresh namespace also
 * gives every run the kernel's default socket settings and its own port space.
 */
export function loopbackPlace(name: string): { place: Place; destroy(): Promise<void>; isolated: boolean } {
  if (e2eUnavailable() === null || (process.getuid?.() === 0 && process.platform === 'linux')) {
    try {
      const lab = new Lab();
      const host = lab.host(name);
      return { place: host, destroy: () => lab.destroy(), isolated: true };
    } catch {}
  }
  const local = new LocalPlace();
  return { place: local, destroy: () => local.destroy(), isolated: false };
}

/**
 * Starts node in `host` with V8/Node flags before the script (--cpu-prof, --expose-gc...),
 * optionally with a raised open-file limit (the shell's ulimit, then exec: the pid stays
 * the program's, so /proc/PID/stat is the program's own).
 */
export function nodeIn(host: Place, name: string, script: string, args: string[] = [], flags: string[] = [], nofile = 0): Proc {
  return programIn(host, name, [process.execPath, ...flags, script, ...args], nofile);
}

/** Starts `argv` in `host`, with the open-file limit raised to `nofile` when it is not 0 (as nodeIn). */
export function programIn(host: Place, name: string, argv: string[], nofile = 0): Proc {
  if (!nofile) return host.spawn(name, argv);
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return host.spawn(name, ['sh', '-c', `ulimit -n ${nofile} && exec ${quoted}`]);
}

/** Writes `line` to a fixture's stdin and waits for its answer: its next `event` log line. */
export function ask(p: Proc, line: string, event: string, ms: number): Promise<LogLine> {
  const from = p.lines.length;
  p.child.stdin!.write(line + '\n');
  return p.waitFor(event, () => true, ms, from);
}

/** Runs a command in `host`; throws with its output unless it exits 0. */
export async function sh(host: Host, argv: string[], ms = 30_000): Promise<string> {
  const r = await host.exec(argv, ms);
  if (r.code !== 0) throw new Error(`[${host.name}] ${argv.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The IPv4 address on `dev` in `host`, or null. */
export async function addressOf(host: Host, dev: string): Promise<string | null> {
  const r = await host.exec(['ip', '-j', '-4', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0) return null;
  try {
    const j = JSON.parse(r.stdout) as Array<{ addr_info: Array<{ local: string }> }>;
    return j[0]?.addr_info?.[0]?.local ?? null;
  } catch {
    return null;
  }
}

/**
 * The TUN section's network, the lab's links with the kernel routing between them:
 *
 *     c1 ──198.18.1.0/24── hub ──198.18.2.0/24── c2
 *
 * The hub forwards between the two subnets (the raw path) and runs every VPN's server.
 */
export interface Star {
  lab: Lab;
  hub: Host;
  c1: Host;
  c2: Host;
  /** The hub's address on each client's link, and each client's own. */
  hub1: string;
  hub2: string;
  c1Addr: string;
  c2Addr: string;
}

export async function star(mtu = 1500): Promise<Star> {
  const lab = new Lab();
  try {
    const hub = lab.host('hub');
    const c1 = lab.host('c1');
    const c2 = lab.host('c2');
    const l1 = lab.link(hub, c1, mtu);
    const l2 = lab.link(hub, c2, mtu);
    await sh(hub, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await sh(c1, ['ip', 'route', 'add', '198.18.2.0/24', 'via', l1.a]);
    await sh(c2, ['ip', 'route', 'add', '198.18.1.0/24', 'via', l2.a]);
    return { lab, hub, c1, c2, hub1: l1.a, hub2: l2.a, c1Addr: l1.b, c2Addr: l2.b };
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}
