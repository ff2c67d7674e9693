// Section 3, scale: N idle clients on one server (bench/fixtures/server.ts, no tun) over
// loopback, from several processes of bench/fixtures/scale-clients.ts, each from its own
// 127.x source address. Measures address assignments per second (all clients connecting at
// once, a bounded number waiting for their reply in each process) and the server's memory
// per client (after a full GC, before and after, divided by N), then holds the clients
// through keepalive rounds and checks that none was dropped.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ProfileSummary, summarizeProfile } from './cpuprofile.js';
import { type HeapGroup, perClient } from './heapsnapshot.js';
import { SERVER_BIN, nodeFlags } from '../test/support/lab.js';
import { FIXTURES, type Place, type Proc, loopbackPlace, nodeIn } from './netlab.js';
import { type Background, backgroundSampler, cpuShare, errorText, procTimes, round, sleep, waitQuiet } from './util.js';

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
  /**
   * The same load against bench/fixtures/floor-server.ts (a bare node:net server that
   * answers each request with one fixed reply), same node flags: Node's own cost per client.
   */
  reference?: { clients: number; rssPerClient: number; heapPerClient: number; assignmentsPerSecond: number | null; error?: string };
  /** A second assignment burst with the server under node --cpu-prof. */
  profile?: { assignmentsPerSecond: number | null; server: ProfileSummary | null; error?: string };
  error?: string;
}

interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  sessions: number;
}

async function snapshot(server: Proc, path: string): Promise<void> {
  const from = server.lines.length;
  server.child.stdin!.write(`snapshot ${path}\n`);
  await server.waitFor('snapshot', () => true, 60_000, from);
}

export interface ScaleOptions {
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

async function mem(server: Proc): Promise<Mem> {
  const from = server.lines.length;
  server.child.stdin!.write('mem\n');
  const m = await server.waitFor('mem', () => true, 30_000, from);
  return { rss: Number(m.rss), heapUsed: Number(m.heapUsed), heapTotal: Number(m.heapTotal), external: Number(m.external), arrayBuffers: Number(m.arrayBuffers), sessions: Number(m.sessions) };
}

export async function scaleSection(o: ScaleOptions): Promise<ScaleResult> {
  const { place, destroy, isolated } = loopbackPlace('scale');
  const k = Math.ceil(o.clients / o.perProcess);
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
    for (let i = 0; i < k; i++) {
      const count = Math.min(o.perProcess, o.clients - i * o.perProcess);
      const args = { host: '127.0.0.1', port, count, base: i * o.perProcess, window: o.window };
      clients.push(nodeIn(place, `scale-clients-${i}`, join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], o.perProcess + 1024));
    }
    await Promise.all(clients.map((c) => c.waitFor('loaded', () => true, 15_000)));
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
      const from = clients.map((c) => c.lines.length);
      clients.forEach((c, i) => {
        const count = Math.min(o.perProcess, o.clients - i * o.perProcess);
        c.child.stdin!.write(wave === 0 ? `go ${Math.floor(count / 2)}\n` : 'go\n');
      });
      const done = await Promise.all(clients.map((c, i) => c.waitFor('assigned', () => true, 120_000, from[i])));
      const c1 = procTimes(server.pid);
      if (c0 && c1) cpuSeconds += c1.user + c1.sys - c0.user - c0.sys;
      wallSeconds += (Date.now() - t0) / 1000;
      const assigned = done.reduce((s, d) => s + Number(d.count), 0);
      res.assigned += assigned;
      res.failed += done.reduce((s, d) => s + Number(d.failed), 0);
      // Each process reports its errors so far: the last wave's reports hold them all.
      res.errors = {};
      for (const d of done) for (const [e, n] of Object.entries(d.errors as Record<string, number>)) res.errors[e] = (res.errors[e] ?? 0) + n;
      const first = Math.min(...done.map((d) => Number(d.first)));
      const last = Math.max(...done.map((d) => Number(d.last)));
      res.assignSeconds = round((res.assignSeconds ?? 0) + Math.max(0, last - first) / 1000, 3);
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
    const status = await Promise.all(
      clients.map(async (c) => {
        const from = c.lines.length;
        c.child.stdin!.write('status\n');
        return c.waitFor('status', () => true, 10_000, from);
      }),
    );
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
    const k = Math.ceil(o.clients / o.perProcess);
    for (let i = 0; i < k; i++) {
      const count = Math.min(o.perProcess, o.clients - i * o.perProcess);
      const args = { host: '127.0.0.1', port, count, base: i * o.perProcess, window: o.window };
      clients.push(nodeIn(place, `floor-clients-${i}`, join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], o.perProcess + 1024));
    }
    await Promise.all(clients.map((c) => c.waitFor('loaded', () => true, 15_000)));
    for (const c of clients) c.child.stdin!.write('go\n');
    const done = await Promise.all(clients.map((c) => c.waitFor('assigned', () => true, 120_000)));
    const count = done.reduce((n, d) => n + Number(d.count), 0);
    const first = Math.min(...done.map((d) => Number(d.first)));
    const last = Math.max(...done.map((d) => Number(d.last)));
    await sleep(o.hold * 1000);
    const after = await mem(server);
    const n = after.sessions || 1;
    return {
      clients: after.sessions,
      rssPerClient: Math.round((after.rss - before.rss) / n),
      heapPerClient: Math.round((after.heapUsed - before.heapUsed) / n),
      assignmentsPerSecond: last > first ? Math.round(count / ((last - first) / 1000)) : null,
    };
  } catch (e) {
    return { clients: 0, rssPerClient: 0, heapPerClient: 0, assignmentsPerSecond: null, error: errorText(e) };
  } finally {
    for (const c of clients) await c.stop('SIGTERM', 3000);
    await server.stop('SIGTERM', 5000);
  }
}

/** All clients at once against a server under node --cpu-prof: where assigning spends its time. */
async function profiledBurst(place: Place, o: ScaleOptions, nofile: number): Promise<NonNullable<ScaleResult['profile']>> {
  const name = 'scale-server.cpuprofile';
  const flags = [...nodeFlags(SERVER_BIN), '--cpu-prof', '--cpu-prof-dir', o.profileDir!, '--cpu-prof-name', name];
  const server = nodeIn(place, 'scale-server-profiled', join(FIXTURES, 'server.js'), [JSON.stringify({ port: 0, host: '127.0.0.1', handshakeTimeout: 30 })], flags, nofile);
  let rate: number | null = null;
  try {
    const port = Number((await server.waitFor('listening', () => true, 10_000)).port);
    const args = { host: '127.0.0.1', port, count: o.clients, base: 0, window: o.window };
    const c = nodeIn(place, 'scale-clients-profiled', join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], o.clients + 1024);
    await c.waitFor('loaded', () => true, 15_000);
    c.child.stdin!.write('go\n');
    const d = await c.waitFor('assigned', () => true, 120_000);
    rate = Number(d.last) > Number(d.first) ? Math.round(Number(d.count) / ((Number(d.last) - Number(d.first)) / 1000)) : null;
    await c.stop('SIGTERM', 3000);
    await server.stop('SIGTERM', 8000);
    o.log(`  (profiled) ${d.count} assignments at ${rate}/s under the profiler`);
    return { assignmentsPerSecond: rate, server: summarizeProfile(join(o.profileDir!, name)) };
  } catch (e) {
    await server.stop('SIGKILL', 2000);
    return { assignmentsPerSecond: rate, server: null, error: errorText(e) };
  }
}
