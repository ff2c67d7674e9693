// Section 3, scale: N idle clients on one server (bench/fixtures/server.ts, no tun) over
// loopback, from several processes of bench/fixtures/scale-clients.ts, each from its own
// 127.x source address. Measures address assignments per second (all clients connecting at
// once, a bounded number waiting for their reply in each process) and the server's memory
// per client (after a full GC, before and after, divided by N), then holds the clients
// through keepalive rounds and checks that none was dropped.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REPLY, KIND_REQUEST, extMessage, ANY } from '../../protocol/index.js';
import { type LogLine, type Proc, SERVER_BIN, nodeFlags } from '../../test/support/lab.js';
import { FIXTURES, type Place, ask, loopbackPlace, nodeIn, programIn } from '../netlab.js';
import { type Background, backgroundSampler, cpuShare, procTimes, waitQuiet } from '../probes/cpu.js';
import { type ProfileSummary, summarizeProfile } from '../probes/cpuprofile.js';
import { type HeapGroup, perClient } from '../probes/heapsnapshot.js';
import { errorText, round, sleep } from '../util.js';
import type { Section } from './section.js';

export interface ScaleResult {
  clients: number;
  processes: number;
  window: number;
  assigned: number;
  failed: number;
  errors: Record<string, number>;
  /** From the first connect to the last reply, over all client processes, both waves added. */
  assignSeconds: number | null;
  assignmentsPerSecond: number | null;
  /** Server CPU while assigning, share of one core. */
  assignCpu: number | null;
  memory: {
    before: Mem;
    after: Mem;
    /** Per client, bytes: resident set, and the JS heap plus off-heap buffers after GC. */
    rssPerClient: number;
    heapPerClient: number;
    heapTotalPerClient: number;
    externalPerClient: number;
    /** The second wave's cost per client (after - mid), free of fixed costs. */
    marginalRssPerClient: number | null;
    marginalHeapPerClient: number | null;
    /** What the JS heap holds per client, from heap snapshots before and after. */
    heap: { total: number; groups: HeapGroup[] } | null;
  } | null;
  hold: { seconds: number; keepalive: number; open: number; echoes: number; serverCpu: number | null } | null;
  background: Background | null;
  isolated: boolean;
  /** Why fewer clients were measured than the run asked for (the open-file limit), if so. */
  capped?: string;
  /**
   * The same load against bench/fixtures/floor-server.ts (a bare node:net server that
   * answers each request with one fixed reply), same node flags: Node's own cost per client.
   */
  reference?: { clients: number; rssPerClient: number; heapPerClient: number; assignmentsPerSecond: number | null; error?: string };
  /**
   * Assignment bursts from bench/fixtures/connect-burst.c, a C generator that costs the
   * machine little (the Node one shares the two cores with the server), against the server
   * and the bare node:net server, interleaved: what the server itself allows.
   */
  native?: NativeBursts;
  /** A second assignment burst with the server under node --cpu-prof. */
  profile?: { clients?: number; assignmentsPerSecond: number | null; server: ProfileSummary | null; error?: string };
  error?: string;
}

export interface NativeBursts {
  clients: number;
  window: number;
  /** One entry per round, in the order run (simplevpn, then the bare server, each round). */
  server: Burst[];
  floor: Burst[];
  error?: string;
}

export interface Burst {
  assignmentsPerSecond: number | null;
  failed: number;
  /** Server CPU (user + system) per assignment, µs: what one core allows, free of the generator. */
  serverCpuUs: number | null;
  /** Server and generator CPU while assigning, shares of one core. */
  serverCpu: number | null;
  generatorCpu: number | null;
}

interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  sessions: number;
}

interface ScaleOptions {
  /** Where heap snapshots go (and are removed from); none when absent. */
  snapshotDir?: string;
  /** When set: one more burst of assignments with the server under node --cpu-prof, here. */
  profileDir?: string;
  clients: number;
  perProcess: number;
  window: number;
  hold: number;
  log: (msg: string) => void;
}

// The questions the server fixtures answer on stdin (bench/fixtures/server.ts).

/** The server's memory after a full GC. */
async function mem(server: Proc): Promise<Mem> {
  const m = await ask(server, 'mem', 'mem', 30_000);
  return { rss: Number(m.rss), heapUsed: Number(m.heapUsed), heapTotal: Number(m.heapTotal), external: Number(m.external), arrayBuffers: Number(m.arrayBuffers), sessions: Number(m.sessions) };
}

/** A V8 heap snapshot of the server, written to `path`. */
async function snapshot(server: Proc, path: string): Promise<void> {
  await ask(server, `snapshot ${path}`, 'snapshot', 60_000);
}

/**
 * Starts the processes of bench/fixtures/scale-clients.ts for o.clients clients (at most
 * o.perProcess each, every one from source addresses of its own) against `port`, into
 * `clients` (so that the caller stops them even when one fails to load), and waits until
 * each has loaded; none connects before it is told "go".
 */
async function startClients(place: Place, o: ScaleOptions, port: number, name: string, clients: Proc[]): Promise<void> {
  for (let i = 0; i < processCount(o); i++) {
    const args = { host: '127.0.0.1', port, count: clientsOf(o, i), base: i * o.perProcess, window: o.window };
    clients.push(nodeIn(place, `${name}-${i}`, join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], o.perProcess + 1024));
  }
  await Promise.all(clients.map((c) => c.waitFor('loaded', () => true, 15_000)));
}

const processCount = (o: ScaleOptions) => Math.ceil(o.clients / o.perProcess);
/** How many clients process `i` holds. */
const clientsOf = (o: ScaleOptions, i: number) => Math.min(o.perProcess, o.clients - i * o.perProcess);

/** Over the "assigned" reports of client processes: the clients, and ms from the first connect to the last reply. */
function span(done: LogLine[]): { count: number; ms: number } {
  const first = Math.min(...done.map((d) => Number(d.first)));
  const last = Math.max(...done.map((d) => Number(d.last)));
  return { count: done.reduce((n, d) => n + Number(d.count), 0), ms: last - first };
}

const perSecond = (s: { count: number; ms: number }) => (s.ms > 0 ? Math.round(s.count / (s.ms / 1000)) : null);

async function scaleSection(o: ScaleOptions): Promise<ScaleResult> {
  const { place, destroy, isolated } = loopbackPlace('scale');
  const k = processCount(o);
  const res: ScaleResult = {
    clients: o.clients,
    processes: k,
    window: o.window,
    assigned: 0,
    failed: 0,
    errors: {},
    assignSeconds: null,
    assignmentsPerSecond: null,
    assignCpu: null,
    memory: null,
    hold: null,
    background: null,
    isolated,
  };
  const nofile = Math.max(4096, o.clients + 1024);
  try {
    await waitQuiet();
    const keepalive = 5;
    const server = nodeIn(
      place,
      'scale-server',
      join(FIXTURES, 'server.js'),
      [JSON.stringify({ port: 0, host: '127.0.0.1', keepalive, idleTimeout: 30, handshakeTimeout: 30 })],
      ['--expose-gc', ...nodeFlags(SERVER_BIN)],
      nofile,
    );
    const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
    // The snapshot first: what writing it leaves in the RSS is then in both measurements.
    const snapBefore = o.snapshotDir ? join(o.snapshotDir, 'scale-before.heapsnapshot') : null;
    if (snapBefore) await snapshot(server, snapBefore);
    const before = await mem(server);
    const clients: Proc[] = [];
    await startClients(place, o, port, 'scale-clients', clients);
    // Two waves of half the clients each, with the memory measured between them: the
    // second wave's cost per client is the marginal one, free of fixed costs (the young
    // generation growing under the burst, code, pools) that the average includes.
    const bg = backgroundSampler();
    let cpuSeconds = 0;
    let wallSeconds = 0;
    let mid: Mem | null = null;
    let firstWave = 0;
    for (const wave of [0, 1]) {
      const c0 = procTimes(server.pid);
      const t0 = Date.now();
      const go = (i: number) => (wave === 0 ? `go ${Math.floor(clientsOf(o, i) / 2)}` : 'go');
      const done = await Promise.all(clients.map((c, i) => ask(c, go(i), 'assigned', 120_000)));
      const c1 = procTimes(server.pid);
      if (c0 && c1) cpuSeconds += c1.user + c1.sys - c0.user - c0.sys;
      wallSeconds += (Date.now() - t0) / 1000;
      const { count: assigned, ms } = span(done);
      res.assigned += assigned;
      res.failed += done.reduce((s, d) => s + Number(d.failed), 0);
      // Each process reports its errors so far: the last wave's reports hold them all.
      res.errors = {};
      for (const d of done) for (const [e, n] of Object.entries(d.errors as Record<string, number>)) res.errors[e] = (res.errors[e] ?? 0) + n;
      res.assignSeconds = round((res.assignSeconds ?? 0) + Math.max(0, ms) / 1000, 3);
      if (wave === 0) {
        firstWave = assigned;
        mid = await mem(server);
      }
    }
    res.background = bg.until();
    res.assignCpu = wallSeconds > 0 ? round(cpuSeconds / wallSeconds, 3) : null;
    res.assignmentsPerSecond = res.assigned && res.assignSeconds ? Math.round(res.assigned / res.assignSeconds) : null;
    o.log(`  ${res.assigned} of ${o.clients} clients got an address in ${res.assignSeconds} s: ${res.assignmentsPerSecond}/s (server CPU ${Math.round((res.assignCpu ?? 0) * 100)}% of a core)${res.failed ? `, ${res.failed} failed: ${JSON.stringify(res.errors)}` : ''}`);
    // Hold them idle through keepalive rounds: every one must stay connected.
    const h0 = procTimes(server.pid);
    await sleep(o.hold * 1000);
    const serverCpu = cpuShare(h0, procTimes(server.pid), o.hold)?.total ?? null;
    const status = await Promise.all(clients.map((c) => ask(c, 'status', 'status', 10_000)));
    res.hold = {
      seconds: o.hold,
      keepalive,
      open: status.reduce((s, x) => s + Number(x.assigned), 0),
      echoes: status.reduce((s, x) => s + Number(x.echoes), 0),
      serverCpu,
    };
    const after = await mem(server);
    const n = after.sessions || 1;
    let heap: { total: number; groups: HeapGroup[] } | null = null;
    if (snapBefore) {
      const snapAfter = join(o.snapshotDir!, 'scale-after.heapsnapshot');
      try {
        await snapshot(server, snapAfter);
        heap = perClient(snapBefore, snapAfter, n);
      } catch (e) {
        o.log(`  (no heap breakdown: ${errorText(e)})`);
      } finally {
        rmSync(snapBefore, { force: true });
        rmSync(snapAfter, { force: true });
      }
    }
    res.memory = {
      before,
      after,
      rssPerClient: Math.round((after.rss - before.rss) / n),
      marginalRssPerClient: mid && n > firstWave ? Math.round((after.rss - mid.rss) / (n - firstWave)) : null,
      marginalHeapPerClient: mid && n > firstWave ? Math.round((after.heapUsed - mid.heapUsed) / (n - firstWave)) : null,
      heapPerClient: Math.round((after.heapUsed - before.heapUsed) / n),
      heapTotalPerClient: Math.round((after.heapTotal - before.heapTotal) / n),
      externalPerClient: Math.round((after.external - before.external) / n),
      heap,
    };
    o.log(
      `  held ${res.hold.open} clients for ${o.hold} s (${res.hold.echoes} keepalive echoes, server CPU ${Math.round((serverCpu ?? 0) * 100)}%): ` +
        `${res.memory.rssPerClient} B RSS, ${res.memory.heapPerClient} B JS heap per client`,
    );
    for (const c of clients) await c.stop('SIGTERM', 3000);
    await server.stop('SIGTERM', 5000);
    res.reference = await floorRun(place, o, nofile, keepalive);
    if (res.reference.error) o.log(`  reference FAILED: ${res.reference.error.split('\n')[0]}`);
    else
      o.log(
        `  reference: a bare node:net server holding the same ${res.reference.clients} clients: ${res.reference.rssPerClient} B RSS, ` +
          `${res.reference.heapPerClient} B JS heap per client (${res.reference.assignmentsPerSecond}/s answered)`,
      );
    res.native = await nativeBursts(place, o, nofile, keepalive);
    for (const [i, b] of res.native.server.entries()) {
      const f = res.native.floor[i];
      const show = (x: Burst) => `${x.assignmentsPerSecond}/s (server ${x.serverCpuUs} µs of CPU each, ${Math.round((x.serverCpu ?? 0) * 100)}% of a core; generator ${Math.round((x.generatorCpu ?? 0) * 100)}%)`;
      o.log(`  C generator, round ${i + 1}, ${res.native.clients} clients: simplevpn ${show(b)}; bare node:net server ${f ? show(f) : 'n/a'}`);
    }
    if (res.native.error) o.log(`  C generator: ${res.native.error.split('\n')[0]}`);
    if (o.profileDir) res.profile = await profiledBurst(place, o, nofile);
  } catch (e) {
    res.error = errorText(e);
    o.log(`  FAILED: ${res.error.split('\n')[0]}`);
  } finally {
    await destroy();
  }
  return res;
}

/** The same clients, all at once, against the floor server; its memory per client after a hold. */
async function floorRun(place: Place, o: ScaleOptions, nofile: number, keepalive: number): Promise<NonNullable<ScaleResult['reference']>> {
  const server = nodeIn(place, 'floor-server', join(FIXTURES, 'floor-server.js'), [JSON.stringify({ port: 0, host: '127.0.0.1', keepalive })], ['--expose-gc', ...nodeFlags(SERVER_BIN)], nofile);
  const clients: Proc[] = [];
  try {
    const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
    const before = await mem(server);
    await startClients(place, o, port, 'floor-clients', clients);
    const done = await Promise.all(clients.map((c) => ask(c, 'go', 'assigned', 120_000)));
    await sleep(o.hold * 1000);
    const after = await mem(server);
    const n = after.sessions || 1;
    return {
      clients: after.sessions,
      rssPerClient: Math.round((after.rss - before.rss) / n),
      heapPerClient: Math.round((after.heapUsed - before.heapUsed) / n),
      assignmentsPerSecond: perSecond(span(done)),
    };
  } catch (e) {
    return { clients: 0, rssPerClient: 0, heapPerClient: 0, assignmentsPerSecond: null, error: errorText(e) };
  } finally {
    for (const c of clients) await c.stop('SIGTERM', 3000);
    await server.stop('SIGTERM', 5000);
  }
}

/** The C generator, built with this machine's compiler into a temp dir; null and why when it cannot be. */
function buildGenerator(): { bin: string; dir: string } | { error: string } {
  const dir = mkdtempSync(join(tmpdir(), 'svpn-burst-'));
  const bin = join(dir, 'connect-burst');
  const r = spawnSync('cc', ['-O2', '-o', bin, join(FIXTURES, 'connect-burst.c')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return { bin, dir };
  rmSync(dir, { recursive: true, force: true });
  return { error: `no C generator: cc ${r.error ? r.error.message : `exited ${r.status}: ${(r.stderr || '').trim().split('\n')[0]}`}` };
}

const REQUEST_HEX = Buffer.from(extMessage(ANY, ANY, KIND_REQUEST, [])).toString('hex');

/**
 * All clients at once from the C generator (one process, o.window waiting at a time), against
 * the server and against the bare node:net server, two rounds interleaved: rate, and server
 * CPU per assignment (load on the machine slows the rate, less the CPU each assignment takes).
 */
async function nativeBursts(place: Place, o: ScaleOptions, nofile: number, keepalive: number): Promise<NativeBursts> {
  const clients = Math.min(o.clients, NATIVE_CLIENTS);
  const out: NativeBursts = { clients, window: o.window, server: [], floor: [] };
  const gen = buildGenerator();
  if ('error' in gen) return { ...out, error: gen.error };
  try {
    for (let r = 0; r < 2; r++) {
      for (const kind of ['server', 'floor'] as const) {
        await waitQuiet();
        const script = join(FIXTURES, kind === 'server' ? 'server.js' : 'floor-server.js');
        const server = nodeIn(place, `burst-${kind}`, script, [JSON.stringify({ port: 0, host: '127.0.0.1', keepalive, idleTimeout: 30, handshakeTimeout: 30 })], ['--expose-gc', ...nodeFlags(SERVER_BIN)], nofile);
        let g: Proc | null = null;
        try {
          const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
          g = programIn(place, `burst-gen-${kind}`, [gen.bin, '127.0.0.1', String(port), String(clients), '0', String(o.window), REQUEST_HEX, String(KIND_REPLY)], clients + 1024);
          await g.waitFor('loaded', () => true, 10_000);
          const s0 = procTimes(server.pid);
          const g0 = procTimes(g.pid);
          const t0 = Date.now();
          const d = await ask(g, 'go', 'assigned', 120_000);
          const wall = (Date.now() - t0) / 1000;
          const s1 = procTimes(server.pid);
          const g1 = procTimes(g.pid);
          const count = Number(d.count);
          const busy = (a: typeof s0, b: typeof s0) => (a && b ? b.user + b.sys - a.user - a.sys : null);
          const sb = busy(s0, s1);
          const gb = busy(g0, g1);
          out[kind].push({
            assignmentsPerSecond: perSecond(span([d])),
            failed: Number(d.failed),
            serverCpuUs: sb !== null && count > 0 ? Math.round((sb / count) * 1e6) : null,
            serverCpu: sb !== null && wall > 0 ? round(sb / wall, 3) : null,
            generatorCpu: gb !== null && wall > 0 ? round(gb / wall, 3) : null,
          });
        } finally {
          await g?.stop('SIGTERM', 3000);
          await server.stop('SIGTERM', 8000);
        }
      }
    }
  } catch (e) {
    out.error = errorText(e);
  } finally {
    rmSync(gen.dir, { recursive: true, force: true });
  }
  return out;
}

/** All clients at once against a server under node --cpu-prof: where assigning spends its time. */
async function profiledBurst(place: Place, o: ScaleOptions, nofile: number): Promise<NonNullable<ScaleResult['profile']>> {
  const name = 'scale-server.cpuprofile';
  const flags = [...nodeFlags(SERVER_BIN), '--cpu-prof', '--cpu-prof-dir', o.profileDir!, '--cpu-prof-name', name];
  const server = nodeIn(place, 'scale-server-profiled', join(FIXTURES, 'server.js'), [JSON.stringify({ port: 0, host: '127.0.0.1', handshakeTimeout: 30 })], flags, nofile);
  let rate: number | null = null;
  const count = Math.min(o.clients, PROFILED_CLIENTS);
  try {
    const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
    const args = { host: '127.0.0.1', port, count, base: 0, window: o.window };
    const c = nodeIn(place, 'scale-clients-profiled', join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], count + 1024);
    await c.waitFor('loaded', () => true, 15_000);
    const d = await ask(c, 'go', 'assigned', 120_000);
    rate = perSecond(span([d]));
    await c.stop('SIGTERM', 3000);
    await server.stop('SIGTERM', 8000);
    o.log(`  (profiled) ${d.count} assignments at ${rate}/s under the profiler`);
    return { clients: count, assignmentsPerSecond: rate, server: summarizeProfile(join(o.profileDir!, name)) };
  } catch (e) {
    await server.stop('SIGKILL', 2000);
    return { assignmentsPerSecond: rate, server: null, error: errorText(e) };
  }
}

// Heap snapshots of more clients than this take minutes to write and read: the breakdown is
// per client, and as telling at this size.
const SNAPSHOT_CLIENTS = 20_000;
// The profiled burst: where assigning spends its time shows at this size as well.
const PROFILED_CLIENTS = 10_000;
// The C generator's bursts: four of them (two rounds, two servers); the rate shows at this size.
const NATIVE_CLIENTS = 10_000;

/**
 * The hard limit on open files of this process, which the server's `ulimit -n` cannot go
 * above without CAP_SYS_RESOURCE (some containers withhold it); null when unknown.
 */
function hardNofile(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    return hard === undefined || hard === 'unlimited' ? null : Number(hard);
  } catch {
    return null;
  }
}

export const runScale: Section<ScaleResult> = async (ctx) => {
  // Issue 14's 100,000 (10 client processes of 10,000; one source address each, up to
  // 125,000); SIMPLEVPN_BENCH_CLIENTS sets another number for a run by hand. One server
  // process holds them all: no more than its open-file limit allows.
  const asked = Number(process.env.SIMPLEVPN_BENCH_CLIENTS) || (ctx.quick ? 2000 : 100_000);
  const hard = hardNofile();
  const room = hard === null ? asked : Math.floor((hard - 1024) / 1000) * 1000;
  const clients = Math.min(asked, room);
  const capped =
    clients < asked
      ? `${asked.toLocaleString('en')} asked for, ${clients.toLocaleString('en')} measured: the open-file limit here is ${hard} (hard), which a process without CAP_SYS_RESOURCE cannot raise, and one server holds every client`
      : undefined;
  ctx.log(`\n3. Scale (${clients} clients)`);
  if (capped) ctx.log(`  ${capped}`);
  const res = await scaleSection({
    clients,
    perProcess: 10_000,
    window: 512,
    hold: ctx.quick ? 6 : 11,
    snapshotDir: clients <= SNAPSHOT_CLIENTS ? ctx.outDir : undefined,
    profileDir: ctx.profileDir,
    log: ctx.log,
  });
  return capped ? { ...res, capped } : res;
};
