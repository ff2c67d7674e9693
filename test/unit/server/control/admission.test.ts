// Admission over a lease store that records elsewhere (as an etcd-backed one would): the
// client waits while the store works, a connection that closes meanwhile gives its lease
// back, and a store that cannot record refuses with "try again". Sessions run on fake
// sockets: no network.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Socket } from 'node:net';
import { ANY, DST, KIND_REFUSAL, KIND_REPLY, KIND_REQUEST, REFUSE_FULL, REFUSE_STORE_UNAVAILABLE, extKind, extMessage, parseIPv4, readRefusal, readU32, seedRequest } from '../../../../protocol/index.js';
import { resolveConfig } from '../../../../server/src/config/config.js';
import { Admission, type Client } from '../../../../server/src/control/admission.js';
import type { Allocation, LeaseStore } from '../../../../server/src/control/lease-store.js';
import { MemoryLeaseStore } from '../../../../server/src/control/memory-lease-store.js';
import { Reassembly } from '../../../../server/src/data/session.js';
import { Switch } from '../../../../server/src/data/switch.js';
import { Metrics } from '../../../../server/src/metrics/metrics.js';
import { FakeSocket } from '../../../support/fake-socket.js';

const ip = (s: string) => parseIPv4(s);

/** The memory store behind promises the test settles by hand. */
class SlowStore implements LeaseStore {
  readonly mem = new MemoryLeaseStore(ip('10.6.0.0'), 24, [ip('10.6.0.1')]);
  readonly waiting: Array<{ resolve: (a: Allocation) => void; reject: (e: Error) => void; wanted: number; owner: boolean; holder: number }> = [];
  readonly released: number[] = [];
  inside = (a: number) => this.mem.inside(a);
  assignable = (a: number) => this.mem.assignable(a);
  isFixed = (a: number) => this.mem.isFixed(a);
  fix = (a: number) => this.mem.fix(a);
  unfix = (a: number) => this.mem.unfix(a);
  allocate(wanted: number, owner: boolean, holder: number): Promise<Allocation> {
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject, wanted, owner, holder }));
  }
  /** Settles the oldest allocation as the memory store would answer it, or with `answer`. */
  settle(answer?: Allocation | Error): void {
    const w = this.waiting.shift()!;
    if (answer instanceof Error) return w.reject(answer);
    w.resolve(answer ?? this.mem.allocate(w.wanted, w.owner, w.holder));
  }
  renew() {}
  release(a: number, holder: number) {
    this.released.push(a);
    this.mem.release(a, holder);
  }
  isLeased = (a: number) => this.mem.isLeased(a);
  get inUse() {
    return this.mem.inUse;
  }
  get free() {
    return this.mem.free;
  }
}

function setup(leases: LeaseStore, options: { maxClients?: number } = {}) {
  const cfg = resolveConfig({ subnet: '10.6.0.0/24', tun: false, ...options });
  const metrics = new Metrics();
  const sw = new Switch(metrics, cfg.gateway);
  const events: Array<{ name: string; fields: any }> = [];
  const ended: Array<{ c: Client; code: string }> = [];
  const admission = new Admission({
    cfg,
    leases,
    env: { sw, metrics, sendQueue: cfg.sendQueue, maxFrame: cfg.maxFrame, reassembly: new Reassembly(cfg.frameMemory) },
    metrics,
    authenticator: () => null,
    linger: () => {},
    event: (_level, name, fields) => events.push({ name, fields }),
    ended: (c, code) => ended.push({ c, code }),
  });
  let id = 1;
  const connect = () => {
    const sock = new FakeSocket();
    const c = admission.connect(sock as unknown as Socket, id++, '192.0.2.1:4000', 'tcp');
    return { sock, c, send: (b: Uint8Array) => sock.emit('data', Buffer.from(b)) };
  };
  return { cfg, metrics, sw, events, ended, admission, connect };
}

const EXT = extMessage(ANY, ANY, KIND_REQUEST, []);
const tick = () => new Promise((r) => setImmediate(r));

test('with the in-memory store the reply is written at once, in the same turn', () => {
  const { sw, connect } = setup(new MemoryLeaseStore(ip('10.6.0.0'), 24, [ip('10.6.0.1')]));
  const { sock, c, send } = connect();
  send(EXT);
  assert.is(sock.out.length, 1);
  assert.is(extKind(sock.out[0]), KIND_REPLY);
  assert.is(readU32(sock.out[0], DST), ip('10.6.0.2'));
  assert.not.ok(c.pending);
  assert.is(sw.lookup(ip('10.6.0.2')), c.session);
});

test('a store that records elsewhere: the client waits (pending, further requests ignored), then gets its reply and is switched', async () => {
  const store = new SlowStore();
  const { sw, connect, events } = setup(store);
  const { sock, c, send } = connect();
  send(EXT);
  assert.ok(c.pending);
  assert.is(sock.out.length, 0);
  send(EXT); // the client asks again meanwhile: one allocation only
  assert.is(store.waiting.length, 1);
  store.settle();
  await tick();
  assert.not.ok(c.pending);
  assert.is(sock.out.length, 1);
  assert.is(readU32(sock.out[0], DST), ip('10.6.0.2'));
  assert.is(c.session.address, ip('10.6.0.2'));
  assert.is(sw.lookup(ip('10.6.0.2')), c.session);
  assert.ok(events.some((e) => e.name === 'assign' && e.fields.address === '10.6.0.2'));
});

test('a connection that closes while its lease is recorded gives the lease back and binds nothing', async () => {
  const store = new SlowStore();
  const { sw, connect, ended } = setup(store);
  const { sock, c, send } = connect();
  send(EXT);
  sock.emit('close');
  assert.is(ended.length, 1);
  store.settle();
  await tick();
  assert.equal(store.released, [ip('10.6.0.2')]);
  assert.is(store.inUse, 0);
  assert.is(sw.size, 0);
  assert.is(c.session.address, ANY);
});

test("a store that cannot record ('unavailable', or a rejected promise) refuses with code 10, try again", async () => {
  for (const answer of ['unavailable' as const, new Error('etcd: connection refused')]) {
    const store = new SlowStore();
    const { sw, metrics, connect, ended } = setup(store);
    const { sock, send } = connect();
    send(EXT);
    store.settle(answer);
    await tick();
    assert.is(sock.out.length, 1);
    assert.is(extKind(sock.out[0]), KIND_REFUSAL);
    assert.is(readRefusal(sock.out[0]).code, REFUSE_STORE_UNAVAILABLE);
    assert.is(readRefusal(sock.out[0]).code, 10, 'code 10 on the wire (PROTOCOL.md)');
    assert.is(metrics.refusals.lease_unavailable, 1);
    assert.ok(sock.ended, 'the connection closes after the refusal');
    assert.equal(
      ended.map((e) => e.code),
      ['refused'],
    );
    assert.is(sw.size, 0);
  }
});

test('a seed client whose lease cannot be recorded is refused the seed way: closed, no reply', async () => {
  const store = new SlowStore();
  const { connect } = setup(store);
  const { sock, send } = connect();
  send(seedRequest(0));
  store.settle('unavailable');
  await tick();
  assert.is(sock.out.length, 0);
  assert.ok(sock.destroyed);
});

test('allocations still being recorded count against max clients', async () => {
  const store = new SlowStore();
  const { connect } = setup(store, { maxClients: 2 });
  const a = connect();
  const b = connect();
  const c = connect();
  a.send(EXT);
  b.send(EXT);
  c.send(EXT);
  assert.is(store.waiting.length, 2, 'the third is refused before asking the store');
  assert.is(readRefusal(c.sock.out[0]).code, REFUSE_FULL);
  store.settle();
  store.settle();
  await tick();
  assert.is(extKind(a.sock.out[0]), KIND_REPLY);
  assert.is(extKind(b.sock.out[0]), KIND_REPLY);
});

test('ending a connection that holds an address unbinds it and releases the lease before the server hears of it', () => {
  const store = new MemoryLeaseStore(ip('10.6.0.0'), 24, [ip('10.6.0.1')]);
  const { sw, connect, ended } = setup(store);
  const { c, send } = connect();
  send(EXT);
  const a = c.session.address;
  assert.ok(store.isLeased(a));
  let seen: boolean | null = null;
  ended.push = ((e: { c: Client; code: string }) => {
    seen = store.isLeased(a) || sw.lookup(a) !== undefined;
    return Array.prototype.push.call(ended, e);
  }) as typeof ended.push;
  c.session.end('idle_timeout', 'test');
  assert.is(seen, false);
  assert.not.ok(store.isLeased(a));
  assert.is(sw.lookup(a), undefined);
});

test.run();

test('requests split across chunks on several connections at once are framed apart (a spare framer is shared only between whole frames)', () => {
  const { sw, connect } = setup(new MemoryLeaseStore(ip('10.6.0.0'), 24, [ip('10.6.0.1')]));
  const a = connect();
  const b = connect();
  const whole = connect();
  a.send(EXT.subarray(0, 3));
  b.send(EXT.subarray(0, 13));
  whole.send(EXT); // a whole frame between the halves: through the spare framer
  a.send(EXT.subarray(3));
  b.send(EXT.subarray(13));
  for (const [n, x] of [a, b, whole].entries()) {
    assert.is(x.sock.out.length, 1, `connection ${n}`);
    assert.is(extKind(x.sock.out[0]), KIND_REPLY, `connection ${n}`);
    assert.is(sw.lookup(readU32(x.sock.out[0], DST)), x.c.session, `connection ${n}`);
  }
  assert.equal(new Set([a, b, whole].map((x) => readU32(x.sock.out[0], DST))).size, 3);
});
