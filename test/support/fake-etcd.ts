// An etcd in memory for the unit tests of the cluster's lease store: keys with revisions,
// leases that expire on a manual clock, transactions, watches, and connections that can be
// cut from it (a partition) and joined again. What it answers, it answers asynchronously,
// as the real one does.
import type { Created, EtcdBackend, KeyValue, WatchHandle } from '../../server/src/cluster/etcd-backend.js';
import type { StoreClock } from '../../server/src/cluster/etcd-lease-store.js';

/** A clock whose time moves only when told, running the timers that fall due. */
export class ManualClock implements StoreClock {
  t = 1_000_000;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private next = 1;

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.push({ at: this.t + Math.max(0, ms), fn, id });
    return id;
  }

  clearTimeout(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }

  /** Moves time on by `ms`, a timer at a time, letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const due = this.timers[0];
      if (!due || due.at > end) break;
      this.timers.shift();
      this.t = Math.max(this.t, due.at);
      due.fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** Lets every promise chain and immediate run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

interface Stored {
  value: string;
  modRevision: number;
  lease: string;
}

interface Watch {
  prefix: string;
  conn: FakeConnection;
  change: (type: 'put' | 'delete', kv: KeyValue) => void;
  cancelled: boolean;
}

export class FakeEtcd {
  rev = 1;
  readonly keys = new Map<string, Stored>();
  readonly leases = new Map<string, { ttlMs: number; expiresAt: number }>();
  private readonly watches = new Set<Watch>();
  private nextLease = 0x100;
  /** Every transaction that wrote, in order (for the test's own bookkeeping). */
  readonly writes: Array<{ key: string; value: string | null; rev: number; lease: string }> = [];

  constructor(readonly clock: ManualClock) {}

  connection(): FakeConnection {
    return new FakeConnection(this);
  }

  /** Expires the leases that are due: their keys go, and the watches hear it. */
  expire(): string[] {
    const gone: string[] = [];
    for (const [id, l] of this.leases) {
      if (l.expiresAt > this.clock.now()) continue;
      this.leases.delete(id);
      gone.push(id);
      for (const [k, v] of [...this.keys]) if (v.lease === id) this.del(k);
    }
    return gone;
  }

  put(key: string, value: string, lease: string): number {
    if (lease !== '0' && !this.leases.has(lease)) throw new Error('etcdserver: requested lease not found');
    const rev = ++this.rev;
    this.keys.set(key, { value, modRevision: rev, lease });
    this.writes.push({ key, value, rev, lease });
    this.notify('put', { key, value, modRevision: rev, lease });
    return rev;
  }

  del(key: string): number {
    const rev = ++this.rev;
    this.keys.delete(key);
    this.writes.push({ key, value: null, rev, lease: '0' });
    this.notify('delete', { key, value: '', modRevision: rev, lease: '0' });
    return rev;
  }

  kv(key: string): KeyValue | null {
    const s = this.keys.get(key);
    return s ? { key, value: s.value, modRevision: s.modRevision, lease: s.lease } : null;
  }

  addWatch(w: Watch): void {
    this.watches.add(w);
  }

  removeWatch(w: Watch): void {
    this.watches.delete(w);
  }

  private notify(type: 'put' | 'delete', kv: KeyValue): void {
    for (const w of this.watches) if (!w.cancelled && kv.key.startsWith(w.prefix)) w.conn.deliver(w, type, kv);
  }

  grant(ttlMs: number): string {
    const id = String(this.nextLease++);
    this.leases.set(id, { ttlMs, expiresAt: this.clock.now() + ttlMs });
    return id;
  }
}

/** One server's connection: cut() makes every call fail and holds back watch events until join(). */
export class FakeConnection implements EtcdBackend {
  partitioned = false;
  closed = false;
  calls = 0;
  /** createMany() and removeMany() calls. */
  batches = 0;
  private held: Array<() => void> = [];

  constructor(readonly etcd: FakeEtcd) {}

  cut(): void {
    this.partitioned = true;
  }

  join(): void {
    this.partitioned = false;
    for (const f of this.held.splice(0)) f();
  }

  deliver(w: Watch, type: 'put' | 'delete', kv: KeyValue): void {
    const go = () => queueMicrotask(() => !w.cancelled && w.change(type, kv));
    if (this.partitioned) this.held.push(go);
    else go();
  }

  private async call<T>(f: () => T): Promise<T> {
    this.calls++;
    await new Promise((r) => setImmediate(r));
    if (this.partitioned || this.closed) throw new Error('14 UNAVAILABLE: No connection established');
    return f();
  }

  grant(ttl: number): Promise<string> {
    return this.call(() => this.etcd.grant(ttl * 1000));
  }

  keepAlive(lease: string): Promise<number> {
    return this.call(() => {
      const l = this.etcd.leases.get(lease);
      if (!l || l.expiresAt <= this.etcd.clock.now()) return 0;
      l.expiresAt = this.etcd.clock.now() + l.ttlMs;
      return l.ttlMs / 1000;
    });
  }

  revoke(lease: string): Promise<void> {
    return this.call(() => {
      const l = this.etcd.leases.get(lease);
      if (l) l.expiresAt = 0;
      this.etcd.expire();
    });
  }

  create(key: string, value: string, lease: string): Promise<Created> {
    return this.call(() => {
      const cur = this.etcd.kv(key);
      if (cur) return { ok: false as const, current: cur };
      return { ok: true as const, revision: this.etcd.put(key, value, lease) };
    });
  }

  createMany(items: Array<{ key: string; value: string; lease: string }>): Promise<Created[]> {
    this.batches++;
    return this.call(() =>
      items.map((x): Created => {
        const cur = this.etcd.kv(x.key);
        return cur ? { ok: false, current: cur } : { ok: true, revision: this.etcd.put(x.key, x.value, x.lease) };
      }),
    );
  }

  removeMany(items: Array<{ key: string; rev: number }>): Promise<boolean[]> {
    this.batches++;
    return this.call(() =>
      items.map((x) => {
        if (this.etcd.kv(x.key)?.modRevision !== x.rev) return false;
        this.etcd.del(x.key);
        return true;
      }),
    );
  }

  replace(key: string, rev: number, value: string, lease: string): Promise<number | null> {
    return this.call(() => (this.etcd.kv(key)?.modRevision === rev ? this.etcd.put(key, value, lease) : null));
  }

  remove(key: string, rev: number): Promise<boolean> {
    return this.call(() => {
      if (this.etcd.kv(key)?.modRevision !== rev) return false;
      this.etcd.del(key);
      return true;
    });
  }

  list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    return this.call(() => ({ kvs: [...this.etcd.keys.keys()].filter((k) => k.startsWith(prefix)).map((k) => this.etcd.kv(k)!), revision: this.etcd.rev }));
  }

  watch(prefix: string, from: number, change: (type: 'put' | 'delete', kv: KeyValue) => void): Promise<WatchHandle> {
    return this.call(() => {
      const w: Watch = { prefix, conn: this, change, cancelled: false };
      // What happened since `from`, then what happens next.
      for (const x of this.etcd.writes)
        if (x.rev >= from && x.key.startsWith(prefix)) this.deliver(w, x.value === null ? 'delete' : 'put', { key: x.key, value: x.value ?? '', modRevision: x.rev, lease: x.lease });
      this.etcd.addWatch(w);
      return {
        cancel: async () => {
          w.cancelled = true;
          this.etcd.removeWatch(w);
        },
      };
    });
  }

  close(): void {
    this.closed = true;
  }
}
