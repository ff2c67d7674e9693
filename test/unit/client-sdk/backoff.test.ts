// Reconnect delays: exponential up to a cap, jittered within the upper half.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fc from 'fast-check';
import { Backoff } from '../../../client-sdk/src/backoff.js';

/** A random source that replays `values` in order and fails loudly when it runs out. */
function replay(values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('random called more often than expected');
    return values[i++];
  };
}

const take = (b: Backoff, n: number) => Array.from({ length: n }, () => b.next());

test('with no jitter (random 0) the delays are half of min·2^n: 500, 1000, 2000, 4000', () => {
  assert.equal(take(new Backoff(1000, 60000, () => 0), 4), [500, 1000, 2000, 4000]);
});

test('with full jitter (random → 1) the delays reach min·2^n', () => {
  assert.equal(take(new Backoff(1000, 60000, () => 0.999999), 4), [1000, 2000, 4000, 8000]);
});

test('jitter places the delay inside [cap/2, cap] in proportion to random', () => {
  assert.equal(take(new Backoff(1000, 60000, replay([0.5, 0.25, 0.75])), 3), [750, 1250, 3500]);
});

test('every delay lies in [cap/2, cap] with cap = min(max, min·2^n)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 1, max: 600000 }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 40 }),
      (min, max, rs) => {
        const b = new Backoff(min, max, replay(rs));
        rs.forEach((_, n) => {
          const cap = Math.min(max, min * 2 ** n);
          const d = b.next();
          assert.ok(d >= Math.floor(cap / 2) && d <= Math.ceil(cap), `attempt ${n}: ${d} outside [${cap / 2}, ${cap}]`);
        });
      },
    ),
    { numRuns: 1000 },
  );
});

test('the delay stops growing at max and stays there', () => {
  const b = new Backoff(1000, 5000, () => 0.999999);
  assert.equal(take(b, 7), [1000, 2000, 4000, 5000, 5000, 5000, 5000]);
});

test('a huge number of failures never overflows the cap', () => {
  const b = new Backoff(1000, 60000, () => 0.999999);
  const ds = take(b, 2000);
  assert.is(ds[ds.length - 1], 60000);
  assert.ok(ds.every((d) => Number.isFinite(d) && d <= 60000));
});

test('reset() starts over from min', () => {
  const b = new Backoff(1000, 60000, () => 0);
  take(b, 5);
  b.reset();
  assert.equal(take(b, 3), [500, 1000, 2000]);
});

test('the same injected random sequence gives the same delays', () => {
  const rs = [0.1, 0.9, 0.3, 0.7, 0.5, 0.2, 0.8];
  assert.equal(take(new Backoff(500, 30000, replay(rs)), rs.length), take(new Backoff(500, 30000, replay(rs)), rs.length));
});

test('random is called once per delay', () => {
  let calls = 0;
  const b = new Backoff(1000, 60000, () => (calls++, 0.5));
  take(b, 6);
  assert.is(calls, 6);
});

test.run();
