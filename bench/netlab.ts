// What the benchmarks need on top of the end-to-end lab (test/support/lab.ts): a place to
// run programs with or without root, node programs with V8 flags and a raised open-file
// limit, the fixtures' stdin questions, commands that must succeed, and the hub-and-spoke
// topology of the TUN section with the kernel routing. Namespaces, links and cleanup are
// the lab's own.

import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type Host, Lab, type LogLine, Proc, ROOT, e2eUnavailable } from '../test/support/lab.js';

/** The compiled fixtures (bench/fixtures), the programs the sections start. */
export const FIXTURES = join(ROOT, 'dist/js/bench/fixtures');

/**
 * The TCP congestion control of every namespace the bench makes. A new namespace takes this
 * machine's (net.ipv4.tcp_congestion_control), and that moves every figure: a machine with
 * bbr and no fq qdisc paces each TCP socket with timers, and here measured 35-47 % less on the
 * raw path and on simplevpn's than with cubic (docs/performance.md, "This machine, and noise").
 * cubic is Linux's default, so runs compare across machines.
 */
export const BENCH_CONGESTION_CONTROL = 'cubic';

/** Sets BENCH_CONGESTION_CONTROL in `host`'s namespace; throws when the kernel refuses it. */
export function pinCongestionControl(host: Host): void {
  const r = spawnSync('ip', ['netns', 'exec', host.ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_congestion_control=${BENCH_CONGESTION_CONTROL}`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) throw new Error(`could not set TCP congestion control ${BENCH_CONGESTION_CONTROL} in namespace ${host.ns}: ${(r.stderr || r.error?.message || '').trim()}`);
}

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
 * gives every run the kernel's default socket settings, the bench's congestion control and
 * its own port space.
 */
export function loopbackPlace(name: string): { place: Place; destroy(): Promise<void>; isolated: boolean } {
  const made = e2eUnavailable() === null || (process.getuid?.() === 0 && process.platform === 'linux') ? labOfOne(name) : null;
  if (made) {
    const { lab, host } = made;
    try {
      pinCongestionControl(host);
    } catch (e) {
      void lab.destroy();
      throw e;
    }
    return { place: host, destroy: () => lab.destroy(), isolated: true };
  }
  const local = new LocalPlace();
  return { place: local, destroy: () => local.destroy(), isolated: false };
}

/** A lab of one host named `name`, or null when namespaces cannot be made here after all. */
function labOfOne(name: string): { lab: Lab; host: Host } | null {
  let lab: Lab | null = null;
  try {
    lab = new Lab();
    return { lab, host: lab.host(name) };
  } catch {
    void lab?.destroy();
    return null;
  }
}

/**
 * Starts node in `host` with V8/Node flags before the script (--cpu-prof, --expose-gc...),
 * optionally with a raised open-file limit (the shell's ulimit, then exec: the pid stays
 * the program's, so /proc/PID/stat is the program's own) and variables added to its environment.
 */
export function nodeIn(host: Place, name: string, script: string, args: string[] = [], flags: string[] = [], nofile = 0, env: NodeJS.ProcessEnv = {}): Proc {
  return programIn(host, name, [process.execPath, ...flags, script, ...args], nofile, env);
}

/** Starts `argv` in `host`, with the open-file limit raised to `nofile` when it is not 0, and `env` added (as nodeIn). */
export function programIn(host: Place, name: string, argv: string[], nofile = 0, env: NodeJS.ProcessEnv = {}): Proc {
  if (!nofile) return host.spawn(name, argv, env);
  const quoted = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return host.spawn(name, ['sh', '-c', `ulimit -n ${nofile} && exec ${quoted}`], env);
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
 *                           │
 *                           └──198.18.3.0/24── beyond      (with `beyond` only)
 *
 * The hub forwards between the subnets (the raw path) and runs every VPN's server. With
 * `beyond`, a host on a link of its own stands for the internet behind a VPN server: it has
 * no route but its own subnet, the hub masquerades what it forwards to it (nftables, as a
 * user would set it up), and client 1's default route is the hub, so that without a tunnel
 * the hub routes it there (the raw path) and a tunnel's route to the subnet takes precedence.
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
  /** The host beyond the hub, when asked for. */
  beyond?: Beyond;
}

export interface Beyond {
  host: Host;
  /** Its address, and its subnet (what the VPNs route to the hub). */
  addr: string;
  subnet: string;
  /** The hub's interface on the beyond host's link, and the ruleset that masquerades there. */
  hubDev: string;
  nat: string;
}

/** The beyond host's subnet: the hub's third link (after client 1's and client 2's). */
export const BEYOND_SUBNET = '198.18.3.0/24';

/**
 * The hub's NAT towards the beyond host, in nft's own syntax: every packet the hub routes out
 * of `dev` leaves with the hub's address on it, and replies are translated back by conntrack.
 * The table lives in the hub's namespace and goes with it.
 */
export const natRuleset = (dev: string): string =>
  `table ip svpn_bench_nat { chain postrouting { type nat hook postrouting priority srcnat; policy accept; oifname "${dev}" masquerade; }; }`;

/** The device `host` routes `addr` through (`ip route get`), or null. */
export async function routeDev(host: Host, addr: string): Promise<string | null> {
  const r = await host.exec(['ip', '-j', 'route', 'get', addr]);
  try {
    return (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev ?? null;
  } catch {
    return null;
  }
}

export async function star(mtu = 1500, o: { beyond?: boolean } = {}): Promise<Star> {
  const lab = new Lab();
  try {
    const hub = lab.host('hub');
    const c1 = lab.host('c1');
    const c2 = lab.host('c2');
    for (const h of [hub, c1, c2]) pinCongestionControl(h);
    const l1 = lab.link(hub, c1, mtu);
    const l2 = lab.link(hub, c2, mtu);
    await sh(hub, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await sh(c1, ['ip', 'route', 'add', '198.18.2.0/24', 'via', l1.a]);
    await sh(c2, ['ip', 'route', 'add', '198.18.1.0/24', 'via', l2.a]);
    const s: Star = { lab, hub, c1, c2, hub1: l1.a, hub2: l2.a, c1Addr: l1.b, c2Addr: l2.b };
    if (o.beyond) {
      const host = lab.host('beyond');
      pinCongestionControl(host);
      const l3 = lab.link(hub, host, mtu);
      if (!BEYOND_SUBNET.startsWith(l3.b.slice(0, l3.b.lastIndexOf('.') + 1))) throw new Error(`the beyond host got ${l3.b}, outside ${BEYOND_SUBNET}`);
      const hubDev = await routeDev(hub, l3.b);
      if (!hubDev) throw new Error(`the hub has no route to the beyond host ${l3.b}`);
      const nat = natRuleset(hubDev);
      await sh(hub, ['nft', nat]);
      await sh(c1, ['ip', 'route', 'add', 'default', 'via', l1.a]);
      s.beyond = { host, addr: l3.b, subnet: BEYOND_SUBNET, hubDev, nat };
    }
    return s;
  } catch (e) {
    await lab.destroy();
    throw e;
  }
}
