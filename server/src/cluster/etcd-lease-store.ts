// The lease store of a cluster of servers (--etcd): one key per address in etcd,
// <prefix>leases/<address>, created only if absent, in a transaction, and attached to this
// server's etcd lease. Its value (JSON) names the server holding it (id, underlay address)
// and the client: identity and the hash of its lease token.
//
// Safety before liveness: an address is never held by two clients, even under a partition.
// - An assignment is answered only once etcd has recorded it; when etcd cannot be reached,
//   assignments are refused (lease_unavailable, saying so) while the sessions go on.
// - This server's keys live as long as its etcd lease, which it renews every TTL/4. A
//   renewal sent at t and answered keeps the lease alive on etcd until at least t + TTL
//   (etcd counts from when it hears it, later). When no renewal has been answered for TTL
//   minus a margin, on this server's monotonic clock, it closes the sessions holding its
//   addresses: before etcd can expire the lease and another server grant one of them.
// - A client that reconnects to another server, asking for its address with its lease
//   token, gets it there at once: that server replaces the key (compared on its last
//   revision), and the server the client left sees the key change and closes its session.
//
// Every server watches the lease keys: it keeps a mirror of who holds what (for choosing
// free addresses, and for the gauges), and the kernel routes to the clients of the other
// servers (peer-routes.ts).

import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import { formatIPv4, parseIPv4 } from '../../../protocol/index.js';
import { AddressPool } from '../control/address-pool.js';
import { type LeaseRecord, type Presented, mayReclaim, parseRecord, presentedOf, recordOf } from '../control/lease-record.js';
import type { Allocation, LeaseClaim, LeaseInfo, LeaseStore, LeaseStoreHealth, LeaseStoreHooks } from '../control/lease-store.js';
import { PoolStore } from '../control/memory-lease-store.js';
import { type Created, type EtcdBackend, type KeyValue, MAX_BATCH, type WatchHandle } from './etcd-backend.js';
import { type OpenRouteTable, PeerRoutes } from './peer-routes.js';

export interface StoreClock {
  /** Monotonic ms. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

const realClock: StoreClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface EtcdStoreOptions {
  network: number;
  prefix: number;
  /** Never handed out: the server's own address. */
  reserved: number[];
  /** Opens the connection to etcd (etcd3 is loaded then). */
  connect: () => Promise<EtcdBackend>;
  /** What the cluster's keys start with ('/simplevpn/'). */
  keyPrefix: string;
  /** This server's etcd lease, seconds. */
  ttl: number;
  /** This server's name in the cluster (null: HOSTNAME@ADVERTISE). */
  id: string | null;
  /** This server's underlay address, where the others route its clients' addresses (null: found by open()). */
  advertise: string | null;
  /** The local address this host reaches etcd from: the default for `advertise`. */
  localAddress: () => Promise<string>;
  /** The endpoints, for log lines. */
  endpoints: string;
  hooks: LeaseStoreHooks;
  /** Opens the kernel's routes to the other servers' clients; null: none kept (no tun, or tests). */
  openRoutes: OpenRouteTable | null;
  clock?: StoreClock;
  /** How long open() waits for etcd before starting without it (ms). */
  startWaitMs?: number;
}

/** A key as this server last saw it. */
interface Remote {
  server: string;
  /** The holding server's underlay address, or null when the value is not ours to read. */
  via: string | null;
  lease: string;
  rev: number;
  rec: LeaseRecord | null;
}

/** An address a session of this server holds, and the revision of the key that says so. */
interface Mine {
  holder: number;
  rev: number;
}

/** Tries of allocate(0) when the address chosen was taken meanwhile by another server. */
const MAX_TRIES = 16;

export class EtcdLeaseStore extends PoolStore implements LeaseStore {
  private readonly o: EtcdStoreOptions;
  private readonly clock: StoreClock;
  private readonly leasesPrefix: string;
  private readonly ttlMs: number;
  /** Sessions close this long before the lease could expire on etcd. */
  readonly marginMs: number;
  /** Renewal interval. */
  readonly intervalMs: number;
  private backend: EtcdBackend | null = null;
  private state: 'joining' | 'up' | 'closed' = 'joining';
  private leaseId: string | null = null;
  /** Bumped with every lease granted or lost: answers from before do not count. */
  private gen = 0;
  /** On this server's monotonic clock: the lease lives on etcd at least until then. */
  private validUntil = 0;
  private reachable = false;
  /** cluster_unreachable was logged, and etcd has not answered since. */
  private warned = false;
  private lastError = '';
  private misconfigured: string | null = null;
  private joining: Promise<void> | null = null;
  private closing = false;
  private watch: WatchHandle | null = null;
  private needsResync = false;
  /** The revision the mirror was read at; the watch goes on from there. */
  private listRev = 0;
  /** The newest revision the mirror has seen. */
  private seenRev = 0;
  private readonly mirror = new Map<number, Remote>();
  private readonly mine = new Map<number, Mine>();
  private readonly pending = new Set<number>();
  private readonly releasing = new Map<number, Promise<void>>();
  /** Keys of this server whose deletion failed: deleted when etcd answers again. */
  private readonly stale = new Map<number, number>();
  /** A lease lost while etcd was out of reach: revoked when it answers again. */
  private lostLease: string | null = null;
  /** Creations and deletions asked for in this turn: sent together, MAX_BATCH to a transaction. */
  private creates: Array<{ key: string; value: string; lease: string; done: (r: Created) => void; fail: (e: unknown) => void }> = [];
  private removes: Array<{ key: string; rev: number; done: (ok: boolean) => void; fail: (e: unknown) => void }> = [];
  private flushing = false;
  private tickTimer: unknown = null;
  private deadlineTimer: unknown = null;
  private routes: PeerRoutes | null = null;
  private id: string;
  private advertise: string;

  constructor(o: EtcdStoreOptions) {
    // Each server starts its search for free addresses elsewhere in the subnet.
    super(new AddressPool(o.network, o.prefix, o.reserved, hash(o.id ?? o.advertise ?? `${hostname()}.${process.pid}.${Math.random()}`)));
    this.o = o;
    this.clock = o.clock ?? realClock;
    this.leasesPrefix = o.keyPrefix + 'leases/';
    this.ttlMs = o.ttl * 1000;
    this.marginMs = Math.max(1000, this.ttlMs / 5);
    this.intervalMs = Math.max(250, this.ttlMs / 4);
    this.advertise = o.advertise ?? '';
    this.id = o.id ?? '';
  }

  // ---- lifecycle ----

  /** Joins the cluster, or goes on trying in the background after startWaitMs. */
  async open(): Promise<void> {
    if (!this.advertise) {
      try {
        this.advertise = await this.o.localAddress();
      } catch (err: any) {
        throw new Error(`cannot tell this server's address towards etcd (${err.message}): give it with --cluster-advertise`);
      }
    }
    if (!this.id) this.id = `${hostname()}@${this.advertise}`;
    if (this.o.openRoutes) {
      const table = this.o.openRoutes((err) => this.o.hooks.event('error', 'peer_route_failed', { error: err.message, detail: `routes to the other servers' clients go via their --cluster-advertise address, which must be on a network this server reaches directly (a shared LAN, a GRE or WireGuard link): see README.md` }));
      await table.flush(); // a crashed run's routes
      this.routes = new PeerRoutes(table, this.advertise);
    }
    const joined = this.join();
    const wait = this.o.startWaitMs ?? 5000;
    let timer: unknown = null;
    await Promise.race([joined, new Promise<void>((r) => (timer = this.clock.setTimeout(r, wait)))]);
    this.clock.clearTimeout(timer);
    if (this.misconfigured) throw new Error(this.misconfigured);
    if (this.state !== 'up')
      this.o.hooks.event('warn', 'cluster_not_joined', {
        endpoints: this.o.endpoints,
        error: this.lastError || `no answer within ${wait / 1000} s`,
        consequence: 'the server starts; it refuses assignments (lease_unavailable) until etcd answers',
      });
    this.arm();
  }

  /** The server stops: its sessions end in this turn; then its lease is revoked, which frees their keys at once. */
  async close(): Promise<void> {
    this.closing = true;
    await new Promise((r) => setImmediate(r));
    this.clock.clearTimeout(this.tickTimer);
    this.clock.clearTimeout(this.deadlineTimer);
    const b = this.backend;
    await this.watch?.cancel().catch(() => {});
    if (b && this.leaseId) await within(b.revoke(this.leaseId), 2000).catch(() => {});
    this.state = 'closed';
    this.leaseId = null;
    if (this.routes) await within(this.routes.clear(), 5000).catch(() => {});
    b?.close();
  }

  // ---- leases ----

  allocate(wanted: number, _owner: boolean, holder: number, claim?: LeaseClaim): Allocation | Promise<Allocation> {
    if (!this.canRecord()) return 'unavailable';
    // The claim's bytes are a view of a socket chunk: read them now.
    const p = presentedOf(claim);
    const rec = recordOf(claim);
    return wanted === 0 ? this.any(holder, rec) : this.wanted(wanted, holder, rec, p);
  }

  release(address: number, holder: number): void {
    const m = this.mine.get(address);
    if (m === undefined || m.holder !== holder) return;
    this.mine.delete(address);
    this.sync(address);
    this.route(address);
    // Stopping, the revocation deletes every key at once; without a lease, they are gone.
    if (this.closing || this.state !== 'up' || !this.backend) return;
    const done = this.remove(this.key(address), m.rev).then(
      () => {},
      (err) => {
        this.failed(err);
        this.stale.set(address, m.rev);
      },
    );
    this.releasing.set(
      address,
      done.finally(() => this.releasing.delete(address)),
    );
  }

  unavailableDetail(): string {
    if (this.misconfigured) return this.misconfigured;
    if (this.closing) return 'the server is stopping';
    const why = this.lastError ? `: ${this.lastError}` : '';
    if (this.state !== 'up') return this.reachable ? 'this server is joining the cluster (its etcd lease is being granted)' : `the lease store (etcd) is unreachable${why}`;
    if (this.clock.now() >= this.validUntil - this.marginMs) return `the lease store (etcd) is unreachable: no keepalive answered for ${Math.round((this.clock.now() - this.validUntil + this.ttlMs) / 1000)} s`;
    return this.reachable ? 'the address was taken by another server meanwhile; try again' : `the lease store (etcd) is unreachable${why}`;
  }

  health(): LeaseStoreHealth {
    let elsewhere = 0;
    for (const r of this.mirror.values()) if (r.lease !== this.leaseId) elsewhere++;
    return {
      kind: 'etcd',
      reachable: this.reachable && this.state === 'up',
      held: this.mine.size,
      elsewhere,
      routes: this.routes?.size ?? 0,
      detail: {
        server: this.id,
        advertise: this.advertise,
        endpoints: this.o.endpoints,
        state: this.state,
        lease: this.leaseId ? BigInt(this.leaseId).toString(16) : null,
        lease_valid_s: this.state === 'up' ? Math.max(0, Math.round((this.validUntil - this.marginMs - this.clock.now()) / 100) / 10) : 0,
        last_error: this.lastError || undefined,
      },
    };
  }

  /** Every lease the cluster holds, as this server knows it (for /cluster). */
  records(): LeaseInfo[] {
    return [...this.mirror].map(([a, r]) => ({ address: formatIPv4(a), client: r.rec?.client ?? '', here: this.mine.has(a), server: r.server, via: r.via }));
  }

  // ---- allocation ----

  private canRecord(): boolean {
    return this.state === 'up' && !this.closing && this.clock.now() < this.validUntil - this.marginMs;
  }

  private async any(holder: number, rec: LeaseRecord): Promise<Allocation> {
    for (let i = 0; i < MAX_TRIES; i++) {
      if (!this.canRecord()) return 'unavailable';
      // The pool's next address first; after a collision with another server (which is
      // handing out the addresses next to it, as this one's watch will tell), anywhere.
      const a = (i > 0 && this.randomFree()) || this.pool.allocate();
      if (a === 0) return 'exhausted';
      this.pending.add(a);
      const r = await this.record(a, holder, rec, null);
      if (r !== 'taken') return r === 'ok' ? a : 'unavailable';
    }
    return 'unavailable';
  }

  /** A free address picked at random (taken in the pool), or 0 when a few tries find none. */
  private randomFree(): number {
    const p = this.pool;
    for (let k = 0; k < 32; k++) {
      const a = (p.network + Math.floor(Math.random() * p.span)) >>> 0;
      if (p.take(a, false)) return a;
    }
    return 0;
  }

  private async wanted(a: number, holder: number, rec: LeaseRecord, p: Presented): Promise<Allocation> {
    // This server's own release of it goes first.
    const releasing = this.releasing.get(a);
    if (releasing) await releasing;
    if (this.mine.has(a) || this.pending.has(a)) return 'in_use';
    if (!this.canRecord()) return 'unavailable';
    this.pending.add(a);
    this.sync(a);
    const r = await this.record(a, holder, rec, p);
    return r === 'ok' ? a : r === 'taken' ? 'in_use' : 'unavailable';
  }

  /**
   * Records `a` (in `pending`) for `holder`: creates its key if absent, or replaces it when
   * `p` may take it over or the key is a stale one of this server's lease.
   */
  private async record(a: number, holder: number, rec: LeaseRecord, p: Presented | null): Promise<'ok' | 'taken' | 'error'> {
    const b = this.backend!;
    const gen = this.gen;
    const lease = this.leaseId!;
    const key = this.key(a);
    const value = JSON.stringify({ server: this.id, via: this.advertise, ...rec });
    let rev: number | null = null;
    let from: Remote | null = null;
    try {
      const r = await this.create(key, value, lease);
      if (r.ok) rev = r.revision;
      else {
        const cur = r.current;
        this.learn(a, cur);
        const remote = this.remoteOf(cur);
        const ownStale = cur.lease === lease && !this.mine.has(a);
        if (ownStale || (p !== null && remote.rec !== null && mayReclaim(remote.rec, p, false))) {
          rev = await b.replace(key, cur.modRevision, value, lease);
          if (!ownStale) from = remote;
        } else if (p !== null)
          this.o.hooks.event('debug', 'cluster_in_use', {
            address: formatIPv4(a),
            server: remote.server,
            client: remote.rec?.client,
            presented: p.hash === null ? 'no lease token' : remote.rec?.token ? 'a lease token that is not the one of this lease' : 'a lease token; the lease has none (a seed client)',
          });
      }
      this.ok();
    } catch (err) {
      this.failed(err);
      this.done(a);
      return 'error';
    }
    if (rev === null) {
      this.done(a);
      return 'taken';
    }
    if (gen !== this.gen || !this.canRecord()) {
      // The lease was lost (or is about to be) meanwhile: the key goes with it.
      this.done(a);
      return 'error';
    }
    this.mine.set(a, { holder, rev });
    this.done(a);
    if (from) this.o.hooks.event('info', 'cluster_takeover', { address: formatIPv4(a), from_server: from.server, client: rec.client || undefined });
    return 'ok';
  }

  // Under load many assignments and releases fall in one turn: they go to etcd together.

  private create(key: string, value: string, lease: string): Promise<Created> {
    return new Promise((done, fail) => {
      this.creates.push({ key, value, lease, done, fail });
      this.flushSoon();
    });
  }

  private remove(key: string, rev: number): Promise<boolean> {
    return new Promise((done, fail) => {
      this.removes.push({ key, rev, done, fail });
      this.flushSoon();
    });
  }

  private flushSoon(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => {
      this.flushing = false;
      const b = this.backend!;
      while (this.creates.length) {
        const batch = this.creates.splice(0, MAX_BATCH);
        b.createMany(batch).then(
          (rs) => rs.forEach((r, i) => batch[i]!.done(r)),
          (err) => batch.forEach((x) => x.fail(err)),
        );
      }
      while (this.removes.length) {
        const batch = this.removes.splice(0, MAX_BATCH);
        b.removeMany(batch).then(
          (rs) => rs.forEach((r, i) => batch[i]!.done(r)),
          (err) => batch.forEach((x) => x.fail(err)),
        );
      }
    });
  }

  private done(a: number): void {
    this.pending.delete(a);
    this.sync(a);
    this.route(a);
  }

  /** What a transaction read of `a`, when the watch has not told it yet. */
  private learn(a: number, cur: KeyValue): void {
    if (cur.modRevision <= this.seenRev) return; // the watch told it, and what followed
    this.mirror.set(a, this.remoteOf(cur));
  }

  // ---- the mirror ----

  /** `a` is held per etcd as `r` (null: by no one), as of revision `rev`. */
  private apply(a: number, r: Remote | null, rev: number): void {
    if (r) this.mirror.set(a, r);
    else this.mirror.delete(a);
    const m = this.mine.get(a);
    if (m && rev > m.rev) {
      if (r && r.lease === this.leaseId) m.rev = r.rev;
      else {
        // The record of a session here changed under it: it may not go on.
        this.mine.delete(a);
        if (r) this.o.hooks.evict(a, 'replaced', `the client took its address to server ${r.server}`);
        else this.o.hooks.evict(a, 'lease_lost', 'its record in etcd was deleted');
      }
    }
    this.sync(a);
    this.route(a);
  }

  private change(type: 'put' | 'delete', kv: KeyValue): void {
    if (this.closing || kv.modRevision <= this.listRev) return;
    const a = this.addressOf(kv.key);
    if (a < 0) return;
    this.seenRev = Math.max(this.seenRev, kv.modRevision);
    this.apply(a, type === 'put' ? this.remoteOf(kv) : null, kv.modRevision);
  }

  /** Reads every lease key again and watches from there. */
  private async resync(): Promise<void> {
    const b = this.backend!;
    const gen = this.gen;
    const old = this.watch;
    this.watch = null;
    await old?.cancel().catch(() => {});
    const { kvs, revision } = await b.list(this.leasesPrefix);
    if (gen !== this.gen || this.closing) return;
    const next = new Map<number, Remote>();
    for (const kv of kvs) {
      const a = this.addressOf(kv.key);
      if (a >= 0) next.set(a, this.remoteOf(kv));
    }
    for (const a of [...this.mirror.keys()]) if (!next.has(a)) this.apply(a, null, revision);
    for (const [a, r] of next) this.apply(a, r, r.rev);
    this.listRev = this.seenRev = revision;
    this.needsResync = false;
    const watching = b.watch(this.leasesPrefix, revision + 1, (t, kv) => this.change(t, kv), (err) => {
      this.needsResync = true;
      this.o.hooks.event('warn', 'cluster_watch_broken', { error: err.message, detail: 'the lease keys are read again' });
    });
    // Bounded: etcd may go away between the read and the watch; a watch set up too late is cancelled.
    this.watch = await within(watching, 5000).catch((err) => {
      void watching.then((w) => w.cancel()).catch(() => {});
      throw err;
    });
    // Keys of this server's lease that no session holds (an answer lost, a failed release).
    for (const [a, r] of next) if (r.lease === this.leaseId && !this.mine.has(a) && !this.pending.has(a)) this.stale.set(a, r.rev);
  }

  private remoteOf(kv: KeyValue): Remote {
    let v: any = null;
    try {
      v = JSON.parse(kv.value);
    } catch {}
    const rec = v === null ? null : parseRecord(v);
    const ok = v !== null && typeof rec !== 'string' && typeof v.server === 'string';
    return {
      server: ok ? v.server : '(unreadable)',
      via: ok && typeof v.via === 'string' && parseIPv4(v.via) >= 0 ? v.via : null,
      lease: kv.lease,
      rev: kv.modRevision,
      rec: ok ? (rec as LeaseRecord) : null,
    };
  }

  /** The pool marks what someone holds, is being recorded, or is held here. */
  private sync(a: number): void {
    const want = this.mirror.has(a) || this.mine.has(a) || this.pending.has(a);
    const has = this.pool.has(a);
    if (want && !has) this.pool.take(a, true);
    else if (!want && has) this.pool.release(a);
  }

  private route(a: number): void {
    if (!this.routes) return;
    const r = this.mirror.get(a);
    const elsewhere = r !== undefined && !this.mine.has(a) && !this.pending.has(a) && r.lease !== this.leaseId;
    this.routes.set(a, elsewhere ? r.via : null);
  }

  private key(a: number): string {
    return this.leasesPrefix + formatIPv4(a);
  }

  private addressOf(key: string): number {
    if (!key.startsWith(this.leasesPrefix)) return -1;
    const a = parseIPv4(key.slice(this.leasesPrefix.length));
    return a >= 0 && this.inside(a) ? a : -1;
  }

  // ---- the etcd lease ----

  /** Gets a lease (checking the cluster's configuration first), reads the keys, watches. */
  private join(): Promise<void> {
    if (this.joining) return this.joining;
    this.joining = (async () => {
      try {
        if (!this.backend) {
          try {
            this.backend = await this.o.connect();
          } catch (err) {
            // Not the network (nothing is dialled yet): the etcd client cannot be loaded. Say so and do not start.
            this.misconfigured = (err as Error).message;
            return;
          }
        }
        const b = this.backend;
        if (this.misconfigured === null && this.gen === 0) await this.checkConfig(b);
        if (this.misconfigured) return;
        if (this.lostLease) {
          await b.revoke(this.lostLease).catch(() => {});
          this.lostLease = null;
        }
        if (this.leaseId === null) {
          const sent = this.clock.now();
          const id = await b.grant(this.o.ttl);
          if (this.closing) return void b.revoke(id).catch(() => {});
          this.leaseId = id;
          this.gen++;
          this.validUntil = sent + this.ttlMs;
        }
        await this.resync();
        if (this.closing) return;
        this.state = 'up';
        this.ok();
        this.armDeadline();
        this.o.hooks.event('info', 'cluster_joined', {
          server: this.id,
          advertise: this.advertise,
          lease: BigInt(this.leaseId!).toString(16),
          ttl: this.o.ttl,
          leases_known: this.mirror.size,
          routes: this.routes?.size,
        });
      } catch (err) {
        this.failed(err);
      } finally {
        this.joining = null;
      }
    })();
    return this.joining;
  }

  /** Every server of a cluster must hand out the same subnet, with the same address for the servers. */
  private async checkConfig(b: EtcdBackend): Promise<void> {
    const mine = { subnet: `${formatIPv4(this.pool.network)}/${this.pool.prefix}`, address: this.o.reserved.map(formatIPv4).join(',') };
    const r = await b.create(this.o.keyPrefix + 'config', JSON.stringify(mine), '0');
    if (r.ok) return;
    let theirs: any = null;
    try {
      theirs = JSON.parse(r.current.value);
    } catch {}
    if (theirs?.subnet === mine.subnet && theirs?.address === mine.address) return;
    this.misconfigured =
      `the cluster under --etcd-prefix ${this.o.keyPrefix} has --subnet ${theirs?.subnet} and --address ${theirs?.address}, ` +
      `this server --subnet ${mine.subnet} and --address ${mine.address}: give every server of a cluster the same, or another --etcd-prefix`;
  }

  private arm(): void {
    if (this.closing) return;
    this.clock.clearTimeout(this.tickTimer);
    this.tickTimer = this.clock.setTimeout(() => void this.tick(), this.intervalMs);
  }

  private async tick(): Promise<void> {
    if (this.closing) return;
    try {
      if (this.state !== 'up') await this.join();
      else await this.keepAlive();
    } finally {
      this.arm();
    }
  }

  private async keepAlive(): Promise<void> {
    const b = this.backend!;
    const gen = this.gen;
    const sent = this.clock.now();
    let ttl: number;
    try {
      ttl = await b.keepAlive(this.leaseId!, Math.min(this.intervalMs, 2000));
    } catch (err) {
      return this.failed(err);
    }
    if (gen !== this.gen || this.closing) return;
    if (ttl <= 0) return this.lose('etcd says the lease has expired');
    this.validUntil = Math.max(this.validUntil, sent + ttl * 1000);
    this.ok();
    this.armDeadline();
    try {
      if (this.needsResync) await this.resync();
      for (const [a, rev] of [...this.stale]) {
        this.stale.delete(a);
        if (!this.mine.has(a) && !this.pending.has(a)) await this.remove(this.key(a), rev);
      }
    } catch (err) {
      this.failed(err);
    }
  }

  /** At validUntil minus the margin, unless a renewal is answered first. */
  private armDeadline(): void {
    this.clock.clearTimeout(this.deadlineTimer);
    const ms = this.validUntil - this.marginMs - this.clock.now();
    this.deadlineTimer = this.clock.setTimeout(() => {
      if (this.state === 'up' && !this.closing && this.clock.now() >= this.validUntil - this.marginMs) this.lose(`no keepalive answered for ${Math.round((this.ttlMs - this.marginMs) / 100) / 10} s`);
      else if (this.state === 'up') this.armDeadline();
    }, Math.max(0, ms));
  }

  /** The lease cannot be vouched for: every session holding one of its addresses ends now. */
  private lose(why: string): void {
    const lease = this.leaseId;
    this.state = 'joining';
    this.leaseId = null;
    this.lostLease = lease;
    this.gen++;
    this.validUntil = 0;
    this.clock.clearTimeout(this.deadlineTimer);
    const held = [...this.mine.keys()];
    this.mine.clear();
    this.stale.clear();
    for (const a of held) {
      this.sync(a);
      this.route(a);
    }
    this.o.hooks.event('error', 'cluster_lease_lost', {
      reason: why,
      sessions_closed: held.length,
      detail: 'the sessions holding its addresses are closed before etcd can free them; assignments are refused until the server has a new lease',
    });
    for (const a of held) this.o.hooks.evict(a, 'lease_lost', `this server lost its etcd lease (${why})`);
  }

  private ok(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.lastError = '';
    if (this.warned) this.o.hooks.event('info', 'cluster_reachable', { endpoints: this.o.endpoints });
    this.warned = false;
  }

  private failed(err: unknown): void {
    this.lastError = (err as Error)?.message ?? String(err);
    const first = !this.warned;
    this.reachable = false;
    this.warned = true;
    if (!first) return;
    const left = Math.max(0, Math.round((this.validUntil - this.marginMs - this.clock.now()) / 100) / 10);
    this.o.hooks.event('warn', 'cluster_unreachable', {
      endpoints: this.o.endpoints,
      error: this.lastError,
      consequence:
        this.state === 'up'
          ? `sessions go on; assignments are refused (lease_unavailable) until etcd answers; the sessions close in ${left} s if it has not answered by then`
          : 'assignments are refused (lease_unavailable) until etcd answers',
    });
  }
}

/** A small stable hash of the server's id: where its search for free addresses starts. */
function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}
