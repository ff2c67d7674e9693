// The in-memory lease store: the LeaseStore contract as admission relies on it, answered at
// once (never a promise), over the address pool.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { parseIPv4 } from '../../../../protocol/index.js';
import type { LeaseStore } from '../../../../server/src/control/lease-store.js';
import { MemoryLeaseStore } from '../../../../server/src/control/memory-lease-store.js';

const ip = (s: string) => {
  const n = parseIPv4(s);
  if (n < 0) throw new Error('bad address ' + s);
  return n;
};
const GW = ip('10.5.0.1');
const store = (): LeaseStore => new MemoryLeaseStore(ip('10.5.0.0'), 29, [GW]);

test('the address space: inside the subnet, assignable unless network, broadcast or reserved', () => {
  const s = store();
  assert.ok(s.inside(ip('10.5.0.0')) && s.inside(ip('10.5.0.7')));
  assert.not.ok(s.inside(ip('10.5.0.8')));
  assert.not.ok(s.assignable(ip('10.5.0.0')), 'network');
  assert.not.ok(s.assignable(ip('10.5.0.7')), 'broadcast');
  assert.not.ok(s.assignable(GW), 'the server');
  assert.ok(s.assignable(ip('10.5.0.2')));
  assert.is(s.free, 5);
  assert.is(s.inUse, 0);
});

test('allocate(0) leases any free address, at once; allocate(wanted) that one, or in_use; exhausted when none is left', () => {
  const s = store();
  const first = s.allocate(0, false, 1);
  assert.type(first, 'number', 'answered at once, not a promise');
  assert.is(first, ip('10.5.0.2'));
  assert.is(s.allocate(ip('10.5.0.5'), false, 2), ip('10.5.0.5'));
  assert.is(s.allocate(ip('10.5.0.5'), false, 3), 'in_use');
  assert.ok(s.isLeased(ip('10.5.0.5')));
  const rest = [s.allocate(0, false, 4), s.allocate(0, false, 5), s.allocate(0, false, 6)];
  assert.ok(rest.every((a) => typeof a === 'number'));
  assert.is(s.inUse, 5);
  assert.is(s.free, 0);
  assert.is(s.allocate(0, false, 7), 'exhausted');
});

test('release gives the address back (to the back of the queue); releasing what is free does nothing', () => {
  const s = store();
  const a = s.allocate(0, false, 1) as number;
  s.release(a, 1);
  assert.not.ok(s.isLeased(a));
  assert.is(s.inUse, 0);
  s.release(a, 1);
  assert.is(s.inUse, 0);
  assert.is(s.free, 5);
  assert.is.not(s.allocate(0, false, 2), a, 'a just-released address waits its turn');
});

test('a fixed address is leased only to its owner, and allocate(0) never hands it out', () => {
  const s = store();
  const fixed = ip('10.5.0.2');
  s.fix(fixed);
  assert.ok(s.isFixed(fixed));
  assert.is(s.free, 4);
  assert.is(s.allocate(fixed, false, 1), 'in_use');
  const any = [1, 2, 3, 4].map((h) => s.allocate(0, false, 10 + h));
  assert.not.ok(any.includes(fixed));
  assert.is(s.allocate(0, false, 20), 'exhausted');
  assert.is(s.allocate(fixed, true, 21), fixed);
  s.release(fixed, 21);
  s.unfix(fixed);
  assert.is(s.allocate(0, false, 22), fixed, 'back in general use');
});

test('renew answers at once and changes nothing', () => {
  const s = store();
  const a = s.allocate(0, false, 1) as number;
  assert.is(s.renew(a, 1), undefined);
  assert.ok(s.isLeased(a));
  assert.is(s.inUse, 1);
});

test('random sequences: never two holders of one address, and the gauges add up', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 7 })), { maxLength: 200 }), (ops) => {
      const s = store();
      const held = new Set<number>();
      let holder = 1;
      for (const [op, h] of ops) {
        const addr = ip('10.5.0.0') + h;
        if (op === 0) {
          const a = s.allocate(0, false, holder++);
          if (typeof a === 'number') {
            if (held.has(a)) return false;
            held.add(a);
          } else if (a !== 'exhausted' || held.size !== 5) return false;
        } else if (op === 1) {
          const a = s.allocate(addr, false, holder++);
          if (a === addr) {
            if (held.has(addr) || !s.assignable(addr)) return false;
            held.add(addr);
          } else if (a !== 'in_use' || (s.assignable(addr) && !held.has(addr))) return false;
        } else if (held.has(addr)) {
          s.release(addr, 0);
          held.delete(addr);
        }
        if (s.inUse !== held.size || s.free !== 5 - held.size) return false;
      }
      return [...held].every((a) => s.isLeased(a));
    }),
  );
});

test.run();
