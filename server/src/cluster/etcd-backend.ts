// What the cluster's lease store asks of etcd, as a seam (EtcdBackend), and its
// implementation over the etcd3 client. The store decides every retry and every deadline
// itself: the client here retries nothing (one etcd node), or skips a node that keeps
// failing for 5 s (several), and every unary call ends within the call timeout.
//
// etcd3 (and gRPC with it) is loaded when a server opens its connection to etcd, so a
// server without --etcd never loads it.

import { createSocket } from 'node:dgram';
import type { Etcd3, IKeyValue, IOptions } from 'etcd3';

/** One key as etcd holds it. Revisions and lease ids are etcd's int64s, as numbers and strings. */
export interface KeyValue {
  key: string;
  value: string;
  /** The revision of its last change. */
  modRevision: number;
  /** The etcd lease it is attached to ('0': none). */
  lease: string;
}

export type Created = { ok: true; revision: number } | { ok: false; current: KeyValue };

/** Items of one createMany() or removeMany(): below etcd's default --max-txn-ops (128). */
export const MAX_BATCH = 100;

export interface WatchHandle {
  cancel(): Promise<void>;
}

export interface EtcdBackend {
  /** Grants a lease of `ttl` seconds; its id. */
  grant(ttl: number): Promise<string>;
  /** Renews `lease` once: the TTL etcd gives it from now, 0 or less when it is gone. */
  keepAlive(lease: string, timeoutMs: number): Promise<number>;
  revoke(lease: string): Promise<void>;
  /** Creates `key` attached to `lease` ('0': none) when it does not exist: its revision; or what it holds now. */
  create(key: string, value: string, lease: string): Promise<Created>;
  /**
   * create() for each item, in one round trip (one transaction of one small transaction per
   * key: each succeeds or fails on its own). At most MAX_BATCH items.
   */
  createMany(items: Array<{ key: string; value: string; lease: string }>): Promise<Created[]>;
  /** remove() for each item, in one round trip. At most MAX_BATCH items. */
  removeMany(items: Array<{ key: string; rev: number }>): Promise<boolean[]>;
  /** Replaces `key` when its last change is still `rev`: the new revision, or null. */
  replace(key: string, rev: number, value: string, lease: string): Promise<number | null>;
  /** Deletes `key` when its last change is still `rev`. */
  remove(key: string, rev: number): Promise<boolean>;
  /** Every key under `prefix`, and the revision they were read at. */
  list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;
  /**
   * Every change under `prefix` from revision `from` on, in order, until cancelled; across
   * reconnections without a gap. `broken`: the watch cannot go on (history compacted,
   * cancelled by etcd): read everything again.
   */
  watch(prefix: string, from: number, change: (type: 'put' | 'delete', kv: KeyValue) => void, broken: (err: Error) => void): Promise<WatchHandle>;
  close(): void;
}

export interface EtcdEndpoints {
  /** http://HOST:PORT or https://HOST:PORT. */
  urls: string[];
  ca: Buffer | null;
  cert: Buffer | null;
  key: Buffer | null;
  /** Deadline of each unary call (ms). */
  callTimeoutMs: number;
}

const kv = (x: IKeyValue): KeyValue => ({ key: x.key.toString(), value: x.value.toString(), modRevision: Number(x.mod_revision), lease: String(x.lease || '0') });

/** The key right after every key that starts with `prefix`, for a range read. */
function rangeEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  let i = end.length - 1;
  while (i >= 0 && end[i] === 0xff) i--;
  if (i < 0) return Buffer.from([0]);
  end[i]++;
  return end.subarray(0, i + 1);
}

export async function openEtcd(e: EtcdEndpoints): Promise<EtcdBackend> {
  let Etcd3: typeof import('etcd3').Etcd3;
  try {
    ({ Etcd3 } = await import('etcd3'));
  } catch (err: any) {
    throw new Error(`--etcd needs the etcd3 package, an optional dependency of simplevpn that is not installed here (${err.code ?? err.message}): npm install etcd3 beside simplevpn, or install simplevpn without --omit=optional`);
  }
  // A policy that runs the call once: the store retries as it sees fit.
  const once = { execute: (fn: (ctx: unknown) => unknown) => Promise.resolve().then(() => fn({ signal: new AbortController().signal, attempt: 0 })) } as any;
  const options: IOptions = {
    hosts: e.urls,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + e.callTimeoutMs }),
    dialTimeout: e.callTimeoutMs,
    faultHandling: e.urls.length > 1 ? { global: once } : { global: once, host: () => once },
  };
  if (e.ca || e.cert) options.credentials = { rootCertificate: e.ca ?? Buffer.alloc(0), privateKey: e.key ?? undefined, certChain: e.cert ?? undefined };
  const client: Etcd3 = new Etcd3(options);
  const b = (s: string) => Buffer.from(s);
  const backend: EtcdBackend = {
    async grant(ttl) {
      return String((await client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 })).ID);
    },
    async keepAlive(lease, timeoutMs) {
      const stream = await client.leaseClient.leaseKeepAlive({ deadline: Date.now() + timeoutMs });
      try {
        return await new Promise<number>((resolve, reject) => {
          const t = setTimeout(() => reject(new Error(`no keepalive answer within ${timeoutMs} ms`)), timeoutMs);
          stream.on('data', (r) => {
            clearTimeout(t);
            resolve(Number(r.TTL));
          });
          stream.on('error', (err) => {
            clearTimeout(t);
            reject(err);
          });
          stream.write({ ID: lease });
        });
      } finally {
        stream.on('error', () => {});
        stream.end();
      }
    },
    async revoke(lease) {
      await client.leaseClient.leaseRevoke({ ID: lease });
    },
    async create(key, value, lease) {
      return (await backend.createMany([{ key, value, lease }]))[0]!;
    },
    async createMany(items) {
      const r = await client.kv.txn({
        compare: [],
        success: items.map((x) => ({
          request_txn: {
            compare: [{ key: b(x.key), target: 'Create', result: 'Equal', create_revision: 0 }],
            success: [{ request_put: { key: b(x.key), value: b(x.value), lease: x.lease } }],
            failure: [{ request_range: { key: b(x.key) } }],
          },
        })),
        failure: [],
      });
      return r.responses.map((op, i): Created => {
        const t = op.response_txn;
        if (t.succeeded) return { ok: true, revision: Number(r.header.revision) };
        const got = t.responses[0]?.response_range?.kvs?.[0];
        // Deleted between the compare and the read cannot happen in one transaction.
        if (!got) throw new Error(`etcd: ${items[i]!.key} neither absent nor present`);
        return { ok: false, current: kv(got) };
      });
    },
    async removeMany(items) {
      const r = await client.kv.txn({
        compare: [],
        success: items.map((x) => ({
          request_txn: { compare: [{ key: b(x.key), target: 'Mod', result: 'Equal', mod_revision: x.rev }], success: [{ request_delete_range: { key: b(x.key) } }], failure: [] },
        })),
        failure: [],
      });
      return r.responses.map((op) => op.response_txn.succeeded);
    },
    async replace(key, rev, value, lease) {
      const r = await client.kv.txn({
        compare: [{ key: b(key), target: 'Mod', result: 'Equal', mod_revision: rev }],
        success: [{ request_put: { key: b(key), value: b(value), lease } }],
        failure: [],
      });
      return r.succeeded ? Number(r.header.revision) : null;
    },
    async remove(key, rev) {
      return (await backend.removeMany([{ key, rev }]))[0]!;
    },
    async list(prefix) {
      const r = await client.kv.range({ key: b(prefix), range_end: rangeEnd(prefix) });
      return { kvs: r.kvs.map(kv), revision: Number(r.header.revision) };
    },
    async watch(prefix, from, change, broken) {
      const w = await client.watch().prefix(prefix).startRevision(String(from)).create();
      w.on('put', (x) => change('put', kv(x)));
      w.on('delete', (x) => change('delete', kv(x)));
      w.on('error', (err) => broken(err));
      return { cancel: () => w.cancel() };
    },
    close() {
      client.close();
    },
  };
  return backend;
}

/** The local address this host sends from to reach `url` (a UDP socket connected, nothing sent). */
export function localAddressTowards(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', (err) => {
      s.close();
      reject(err);
    });
    s.connect(Number(u.port) || 2379, u.hostname.replace(/^\[|\]$/g, ''), () => {
      const a = s.address().address;
      s.close();
      resolve(a);
    });
  });
}
