// Section 6, cluster: three servers (dist/bin, real tun devices) on one etcd node, in network
// namespaces (test/support/cluster-lab.ts). Measures:
// - assignments per second through etcd: N clients (bench/fixtures/scale-clients.ts, a third
//   of them on each server, all at once with a bounded number waiting per process), each
//   assignment a transaction in etcd before the reply;
// - how long after the last reply every server's kernel has a route to every client of the
//   other two (the watch, then `ip route replace` in batches);
// - after a kill -9 of one server, how long until no server routes via it any more: its
//   clients' leases go when its etcd lease expires (--etcd-ttl), and the others' watches
//   remove the routes.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterLab, clusterUnavailable, PORT } from '../../test/support/cluster-lab.js';
import type { Proc } from '../../test/support/lab.js';
import { FIXTURES, ask, nodeIn } from '../netlab.js';
import { errorText, sleep } from '../util.js';
import type { Section } from './section.js';

export interface ClusterResult {
  servers: number;
  clients: number;
  assigned: number;
  failed: number;
  errors: Record<string, number>;
  /** From the first connect to the last reply, over the three client processes. */
  assignSeconds: number | null;
  assignmentsPerSecond: number | null;
  /** From the last reply until every server routes every other server's clients. */
  routesConvergedMs: number | null;
  /** After kill -9 of one server holding `killedHeld` clients: until no route goes via it. */
  failover: { killedHeld: number; etcdTtl: number; routesGoneMs: number | null } | null;
  /** TROUBLE lines the servers logged, by event (a starved etcd shows here first). */
  trouble: Record<string, number>;
  error?: string;
}

const TTL = 10;
/** Server log lines that say the cluster was in trouble during the run: counted in the result. */
const TROUBLE = ['cluster_unreachable', 'cluster_lease_lost', 'cluster_watch_broken', 'route_failed', 'cluster_routes_failed'];

/** Routes via each server in `routes` output lines, by its underlay address. */
function countVia(lines: string[], via: string): number {
  return lines.filter((l) => l.includes(` via ${via} `)).length;
}

/** Who holds which address, as etcd says (the truth the routes converge to): address -> server id. */
function holders(L: ClusterLab): Map<string, string> {
  const r = L.etcd!.ctl(['get', '--prefix', '/simplevpn/leases/'], 30_000);
  if (r.code !== 0) throw new Error(`etcdctl get: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i]!.slice(lines[i]!.lastIndexOf('/') + 1), String(JSON.parse(lines[i + 1]!).server));
  return out;
}

/** Servers whose kernel routes differ from etcd's leases: a route to each other server's client, none else. */
function unconverged(L: ClusterLab): string[] {
  const truth = holders(L);
  return L.servers
    .filter((s) => {
      const routed = new Set(L.routes(s).map((l) => l.split(' ')[0]!));
      const want = [...truth].filter(([, server]) => server !== s.name).map(([a]) => a);
      return routed.size !== want.length || want.some((a) => !routed.has(a));
    })
    .map((s) => s.name);
}

async function clusterSection(clients: number, log: (m: string) => void): Promise<ClusterResult> {
  const res: ClusterResult = { servers: 3, clients, assigned: 0, failed: 0, errors: {}, assignSeconds: null, assignmentsPerSecond: null, routesConvergedMs: null, failover: null, trouble: {} };
  const skip = clusterUnavailable();
  if (skip) return { ...res, error: `cannot run: ${skip}` };
  const L = new ClusterLab(3);
  L.serverLogLevel = 'info';
  L.startMs = 90_000;
  // The client processes send keepalives once every client of theirs has an answer.
  L.idleTimeout = 300;
  // etcd's data on tmpfs: this measures the lease store and the routes, not the disk.
  if (existsSync('/dev/shm')) L.etcdUnder = '/dev/shm';
  const procs: Proc[] = [];
  try {
    // No per-source limits: the clients of one process share its one address.
    await L.startAll(1, ['--etcd-ttl', String(TTL), '--max-per-source', '0', '--conn-rate', '0']);
    const host = L.clientHost('load');
    const per = Math.ceil(clients / 3);
    L.servers.forEach((s, i) => {
      const args = { host: s.underlay, port: PORT, count: per, base: i * per, window: 256, bind: false };
      procs.push(nodeIn(host, `cluster-clients-${i}`, join(FIXTURES, 'scale-clients.js'), [JSON.stringify(args)], [], per + 1024));
    });
    await Promise.all(procs.map((p) => p.waitFor('loaded', () => true, 15_000)));
    const done = await Promise.all(procs.map((p) => ask(p, 'go', 'assigned', 180_000)));
    const first = Math.min(...done.map((d) => Number(d.first)));
    const last = Math.max(...done.map((d) => Number(d.last)));
    res.assigned = done.reduce((n, d) => n + Number(d.count), 0);
    res.failed = done.reduce((n, d) => n + Number(d.failed), 0);
    for (const d of done) for (const [e, n] of Object.entries(d.errors as Record<string, number>)) res.errors[e] = (res.errors[e] ?? 0) + n;
    res.assignSeconds = Math.max(0, last - first) / 1000;
    res.assignmentsPerSecond = res.assignSeconds > 0 ? Math.round(res.assigned / res.assignSeconds) : null;
    log(`  ${res.assigned} of ${3 * per} clients got an address through etcd in ${res.assignSeconds.toFixed(2)} s: ${res.assignmentsPerSecond}/s${res.failed ? `, ${res.failed} failed: ${JSON.stringify(res.errors)}` : ''}`);

    // Every server routes exactly the clients the others hold in etcd.
    const end = Date.now() + 60_000;
    for (let left = unconverged(L); left.length; left = unconverged(L)) {
      if (Date.now() > end) throw new Error(`routes did not converge in 60 s: ${left.join(', ')} differ from etcd`);
      await sleep(100);
    }
    res.routesConvergedMs = Math.max(0, Math.round(Date.now() - last));
    const truth = holders(L);
    const held = L.servers.map((s) => [...truth.values()].filter((v) => v === s.name).length);
    log(`  every server routes the others' clients (${held.join('/')} held) as etcd has them, ${res.routesConvergedMs} ms after the last reply`);

    // kill -9 of the third server; its clients do not reconnect (the fixture does not).
    const dead = L.servers[2]!;
    const t0 = Date.now();
    dead.proc!.signal('SIGKILL');
    await dead.proc!.exited;
    const others = L.servers.slice(0, 2);
    const until = Date.now() + (TTL + 30) * 1000;
    let gone: number | null = null;
    while (Date.now() < until) {
      if (others.every((s) => countVia(L.routes(s), dead.underlay) === 0)) {
        gone = Date.now() - t0;
        break;
      }
      await sleep(50);
    }
    res.failover = { killedHeld: held[2]!, etcdTtl: TTL, routesGoneMs: gone };
    log(`  kill -9 of ${dead.name} (holding ${held[2]}): ${gone === null ? 'routes via it still there after the bound' : `no route via it on the others ${gone} ms later`} (--etcd-ttl ${TTL})`);
  } catch (e) {
    res.error = errorText(e);
    log(`  FAILED: ${res.error.split('\n')[0]}`);
  } finally {
    for (const s of L.servers) for (const l of s.proc?.lines ?? []) if (TROUBLE.includes(String(l.event))) res.trouble[String(l.event)] = (res.trouble[String(l.event)] ?? 0) + 1;
    if (Object.keys(res.trouble).length) log(`  the servers logged ${JSON.stringify(res.trouble)}`);
    for (const p of procs) await p.stop('SIGTERM', 3000);
    await L.destroy();
  }
  return res;
}

export const runCluster: Section<ClusterResult> = async (ctx) => {
  const clients = ctx.quick ? 300 : 1500;
  ctx.log(`\n6. Cluster (three servers on one etcd, ${clients} clients)`);
  return clusterSection(clients, ctx.log);
};
