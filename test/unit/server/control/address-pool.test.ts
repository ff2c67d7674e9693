// The address pool: which addresses it hands out, in which order, and that every operation
// agrees with a plain Set model over random sequences of allocate/take/release.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { AddressPool } from '../../../../server/src/control/address-pool.js';
import { formatIPv4, parseIPv4 } from '../../../../protocol/index.js';

const ip = (s: string) => {
  const n = parseIPv4(s);
  if (n < 0) throw new Error('bad address ' + s);
  return n;
};
const fmt = (a: number[]) => a.map(formatIPv4);

/** Allocates until the pool says no; bounded so a broken pool cannot loop forever. */
function drain(p: AddressPool, limit = 1 << 20): number[] {
  const out: number[] = [];
  for (let i = 0; i < limit; i++) {
    const a = p.allocate();
    if (a === 0) return out;
    out.push(a);
  }
  throw new Error('pool kept allocating past ' + limit);
}

// ---- what is never handed out --------------------------------------------------------------

test('a start offset (each server of a cluster its own): the never-used addresses from there on, wrapping round, each once', () => {
  const p = new AddressPool(ip('10.1.2.0'), 29, [ip('10.1.2.1')], 5);
  assert.equal(fmt(drain(p)), ['10.1.2.5', '10.1.2.6', '10.1.2.2', '10.1.2.3', '10.1.2.4']);
  const q = new AddressPool(ip('10.1.2.0'), 29, [], 8 * 1000 + 3); // any number: taken modulo the subnet
  assert.is(q.allocate(), ip('10.1.2.3'));
});

test('a /24 hands out every host but the network, the broadcast and the reserved gateway, once each', () => {
  const p = new AddressPool(ip('10.1.2.0'), 24, [ip('10.1.2.1')]);
  assert.is(p.span, 256);
  assert.is(p.capacity, 253);
  assert.is(p.free, 253);
  const got = drain(p);
  assert.is(got.length, 253);
  assert.is(new Set(got).size, 253, 'no address twice');
  for (const a of got) {
    assert.ok(a > ip('10.1.2.1') && a < ip('10.1.2.255'), 'host address of the subnet, not .0/.1/.255: ' + formatIPv4(a));
  }
  assert.is(p.size, 253);
  assert.is(p.free, 0);
  assert.is(p.allocate(), 0, 'exhausted: 0');
  assert.is(p.allocate(), 0, 'still 0');
  assert.is(p.size, 253);
});

test('a /30 with the gateway reserved has exactly one address to give', () => {
  const p = new AddressPool(ip('192.168.7.4'), 30, [ip('192.168.7.5')]);
  assert.is(p.capacity, 1);
  assert.is(formatIPv4(p.allocate()), '192.168.7.6');
  assert.is(p.allocate(), 0);
  assert.is(p.free, 0);
});

test('a reserved address anywhere in the subnet is skipped; one outside it changes nothing', () => {
  const p = new AddressPool(ip('10.0.0.0'), 29, [ip('10.0.0.4'), ip('10.9.9.9')]);
  assert.is(p.capacity, 5);
  const got = drain(p);
  assert.equal(fmt(got).sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.5', '10.0.0.6']);
});

test('the network is aligned down to the prefix; prefixes outside /8../30 are refused', () => {
  const p = new AddressPool(ip('10.1.2.77'), 24);
  assert.is(formatIPv4(p.network), '10.1.2.0');
  assert.throws(() => new AddressPool(ip('10.0.0.0'), 31), RangeError);
  assert.throws(() => new AddressPool(ip('10.0.0.0'), 7), RangeError);
});

test('inside/assignable/has tell subnet, reservable and held addresses apart', () => {
  const p = new AddressPool(ip('10.0.0.0'), 24, [ip('10.0.0.1')]);
  assert.ok(p.inside(ip('10.0.0.0')) && p.inside(ip('10.0.0.255')));
  assert.not.ok(p.inside(ip('10.0.1.0')));
  assert.not.ok(p.inside(ip('9.255.255.255')));
  assert.not.ok(p.assignable(ip('10.0.0.0')), 'network');
  assert.not.ok(p.assignable(ip('10.0.0.255')), 'broadcast');
  assert.not.ok(p.assignable(ip('10.0.0.1')), 'reserved');
  assert.ok(p.assignable(ip('10.0.0.2')));
  assert.not.ok(p.has(ip('10.0.0.1')), 'a reserved address is not "held"');
  assert.not.ok(p.has(ip('10.0.0.2')));
  assert.ok(p.take(ip('10.0.0.2')));
  assert.ok(p.has(ip('10.0.0.2')));
});

// ---- take and release ----------------------------------------------------------------------

test('take grants a free host address once and refuses in-use, outside, network, broadcast and reserved ones', () => {
  const p = new AddressPool(ip('10.0.0.0'), 24, [ip('10.0.0.1')]);
  assert.ok(p.take(ip('10.0.0.77')));
  assert.is(p.size, 1);
  assert.not.ok(p.take(ip('10.0.0.77')), 'already in use');
  for (const bad of ['10.0.0.0', '10.0.0.255', '10.0.0.1', '10.0.1.5', '0.0.0.0', '255.255.255.255']) {
    assert.not.ok(p.take(ip(bad)), 'take ' + bad);
  }
  assert.is(p.size, 1, 'failed takes change nothing');
  assert.is(p.free, 252);
  // An allocated address cannot be taken either.
  const a = p.allocate();
  assert.not.ok(p.take(a));
  assert.is(p.size, 2);
});

test('allocate never returns an address that was taken', () => {
  const p = new AddressPool(ip('10.0.0.0'), 28, [ip('10.0.0.1')]);
  assert.ok(p.take(ip('10.0.0.2')));
  assert.ok(p.take(ip('10.0.0.3')));
  assert.ok(p.take(ip('10.0.0.14')));
  const got = drain(p);
  assert.equal(fmt(got).sort(), ['10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.4', '10.0.0.5', '10.0.0.6', '10.0.0.7', '10.0.0.8', '10.0.0.9']);
  assert.is(p.size, 13);
});

test('release is idempotent and ignores free, reserved and outside addresses', () => {
  const p = new AddressPool(ip('10.0.0.0'), 24, [ip('10.0.0.1')]);
  const a = p.allocate();
  const b = p.allocate();
  p.release(a);
  assert.is(p.size, 1);
  p.release(a);
  assert.is(p.size, 1, 'a second release does nothing');
  p.release(ip('10.0.0.200')); // never handed out
  p.release(ip('10.0.0.1')); // reserved
  p.release(ip('10.0.0.0'));
  p.release(ip('10.0.0.255'));
  p.release(ip('10.0.3.3'));
  assert.is(p.size, 1);
  assert.is(p.free, 252);
  assert.ok(p.has(b));
  assert.not.ok(p.take(ip('10.0.0.1')), 'releasing the reserved address did not make it assignable');
  // The released address is handed out only once even after the double release.
  const rest = drain(p);
  assert.is(rest.filter((x) => x === a).length, 1);
  assert.is(new Set(rest).size, rest.length);
  assert.is(p.free, 0);
});

test('exhaustion: allocate returns 0, free is 0; one release makes exactly that address available', () => {
  const p = new AddressPool(ip('10.0.0.0'), 29, [ip('10.0.0.1')]);
  const all = drain(p);
  assert.is(all.length, 5);
  assert.is(p.free, 0);
  assert.is(p.allocate(), 0);
  p.release(all[2]);
  assert.is(p.free, 1);
  assert.is(p.allocate(), all[2]);
  assert.is(p.allocate(), 0);
});

// ---- order -------------------------------------------------------------------------------
// The class comment: "first the never-used addresses from the bottom up, then released ones
// oldest first, so an address a client just lost stays free as long as possible".

test('order: never-used addresses come out from the bottom up', () => {
  const p = new AddressPool(ip('10.0.0.0'), 28, [ip('10.0.0.1')]);
  assert.equal(fmt([p.allocate(), p.allocate(), p.allocate()]), ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
});

test('order: a just-released address is not handed out while never-used ones remain', () => {
  const p = new AddressPool(ip('10.0.0.0'), 28, [ip('10.0.0.1')]);
  const a = p.allocate(); // .2
  p.allocate(); // .3
  p.release(a);
  assert.is(formatIPv4(p.allocate()), '10.0.0.4', 'a never-used address first, not the one a client just lost');
});

test('order: once the never-used run out, released addresses come back oldest release first', () => {
  const p = new AddressPool(ip('10.0.0.0'), 29, [ip('10.0.0.1')]);
  drain(p); // .2 .. .6
  p.release(ip('10.0.0.4'));
  p.release(ip('10.0.0.2'));
  p.release(ip('10.0.0.6'));
  assert.equal(fmt(drain(p)), ['10.0.0.4', '10.0.0.2', '10.0.0.6']);
});

test('order: an address taken statically and then released waits behind the never-used ones', () => {
  const p = new AddressPool(ip('10.0.0.0'), 28, [ip('10.0.0.1')]);
  assert.ok(p.take(ip('10.0.0.5')));
  p.release(ip('10.0.0.5'));
  const got = fmt(drain(p));
  assert.equal(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.6', '10.0.0.7', '10.0.0.8', '10.0.0.9', '10.0.0.10', '10.0.0.11', '10.0.0.12', '10.0.0.13', '10.0.0.14', '10.0.0.5']);
});

// ---- properties ----------------------------------------------------------------------------

type Op = { op: 'alloc' } | { op: 'take'; off: number } | { op: 'release'; off: number } | { op: 'releaseHeld'; pick: number };

const opArb = (span: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant({ op: 'alloc' as const }) },
    // Offsets a little outside the subnet on both sides too.
    { weight: 2, arbitrary: fc.integer({ min: -3, max: span + 2 }).map((off) => ({ op: 'take' as const, off })) },
    { weight: 1, arbitrary: fc.integer({ min: -3, max: span + 2 }).map((off) => ({ op: 'release' as const, off })) },
    { weight: 3, arbitrary: fc.nat().map((pick) => ({ op: 'releaseHeld' as const, pick })) },
  );

test('property: allocate/take/release agree with a Set model for /24../30 (no duplicates, size and free consistent)', () => {
  const caseArb = fc
    .record({ prefix: fc.integer({ min: 24, max: 30 }), net: fc.integer({ min: 1, max: 200 }), gwOff: fc.nat() })
    .chain((c) => {
      const span = 2 ** (32 - c.prefix);
      return fc.record({ c: fc.constant(c), ops: fc.array(opArb(span), { maxLength: 400 }) });
    });
  fc.assert(
    fc.property(caseArb, ({ c, ops }) => {
      const span = 2 ** (32 - c.prefix);
      const network = (c.net * 2 ** 24) >>> 0; // c.net.0.0.0, aligned for any prefix
      const gw = network + 1 + (c.gwOff % (span - 2));
      const p = new AddressPool(network, c.prefix, [gw]);
      const assignable = (a: number) => a > network && a < network + span - 1 && a !== gw;
      const model = new Set<number>();
      const held: number[] = [];
      assert.is(p.capacity, span - 3);
      for (const o of ops) {
        if (o.op === 'alloc') {
          const a = p.allocate();
          if (model.size === p.capacity) assert.is(a, 0, 'exhausted pool returns 0');
          else {
            assert.ok(a !== 0, 'allocate returned 0 with ' + (p.capacity - model.size) + ' free');
            assert.ok(assignable(a), 'allocated a non-host or reserved address ' + formatIPv4(a));
            assert.not.ok(model.has(a), 'allocated an address already in use ' + formatIPv4(a));
            model.add(a);
            held.push(a);
          }
        } else if (o.op === 'take') {
          const a = network + o.off;
          const want = assignable(a) && !model.has(a);
          assert.is(p.take(a), want, 'take ' + formatIPv4(a >>> 0));
          if (want) {
            model.add(a);
            held.push(a);
          }
        } else {
          const a = o.op === 'release' ? network + o.off : held.length ? held[o.pick % held.length] : network;
          p.release(a);
          if (model.delete(a)) held.splice(held.indexOf(a), 1);
        }
        assert.is(p.size, model.size, 'size');
        assert.is(p.free, p.capacity - model.size, 'free');
      }
      for (let off = 0; off < span; off++) assert.is(p.has(network + off), model.has(network + off), 'has ' + formatIPv4(network + off));
      // Whatever is left can be allocated exactly once each.
      const rest = drain(p);
      assert.is(rest.length, p.capacity - model.size);
      for (const a of rest) assert.not.ok(model.has(a), 'drain returned a held address');
      assert.is(new Set(rest).size, rest.length);
    }),
    { numRuns: 300 },
  );
});

test('property: with allocate and release only, the order is never-used bottom-up, then released oldest first', () => {
  const ops = fc.array(fc.oneof(fc.constant(-1), fc.nat()), { maxLength: 300 }); // -1: allocate, n: release the n-th held
  fc.assert(
    fc.property(fc.integer({ min: 26, max: 30 }), ops, (prefix, seq) => {
      const span = 2 ** (32 - prefix);
      const network = ip('10.20.0.0');
      const gw = network + 1;
      const p = new AddressPool(network, prefix, [gw]);
      let nextFresh = 2; // offsets 0 and 1: network and gateway
      const released: number[] = [];
      const held: number[] = [];
      for (const s of seq) {
        if (s === -1) {
          let want = 0;
          if (nextFresh < span - 1) want = network + nextFresh++;
          else if (released.length) want = released.shift()!;
          assert.is(formatIPv4(p.allocate()), formatIPv4(want));
          if (want) held.push(want);
        } else if (held.length) {
          const a = held.splice(s % held.length, 1)[0];
          p.release(a);
          released.push(a);
        }
      }
    }),
    { numRuns: 300 },
  );
});

test('a /8 pool is built from bitsets and works: allocate, take at the top, release, reuse', () => {
  const p = new AddressPool(ip('10.0.0.0'), 8, [ip('10.0.0.1')]);
  assert.is(p.capacity, 2 ** 24 - 3);
  const got: number[] = [];
  for (let i = 0; i < 100_000; i++) got.push(p.allocate());
  assert.is(new Set(got).size, 100_000);
  assert.ok(got.every((a) => a > ip('10.0.0.1') && a < ip('10.255.255.255')));
  assert.ok(p.take(ip('10.255.255.254')), 'the highest host');
  assert.not.ok(p.take(ip('10.255.255.255')), 'broadcast');
  assert.is(p.size, 100_001);
  for (let i = 0; i < got.length; i += 2) p.release(got[i]);
  assert.is(p.size, 50_001);
  assert.is(p.free, p.capacity - 50_001);
  for (let i = 0; i < 10_000; i++) assert.ok(p.allocate() !== 0);
  assert.is(p.size, 60_001);
});

test.run();
