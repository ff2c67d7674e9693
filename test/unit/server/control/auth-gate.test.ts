// The gate in front of credential checks (issue 12): the share of each source, a client whose
// proofs hold going ahead of those guessing, the bounded queue and who gives way when it is
// full, guesses per id with backoff, the wait bound and the rate. Checks are promises the
// test settles; the clock is the test's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AuthGate, type GateOptions, type Outcome } from '../../../../server/src/control/auth-gate.js';

/** A gate on a clock the test moves, and checks it settles by hand. */
function rig(options: Partial<GateOptions> = {}) {
  let t = 1_000_000;
  const gate = new AuthGate({ rate: 1e6, burst: 1e6, ...options }, () => t);
  const started: Array<{ source: string; id: string; settle: (ok: boolean) => void }> = [];
  const outcomes = new Map<string, Outcome>();
  let n = 0;
  const submit = (source: string, id: string): string => {
    const tag = `${source}/${id}#${n++}`;
    gate
      .submit(source, id, () => new Promise<boolean>((settle) => started.push({ source, id, settle })))
      .then((o) => outcomes.set(tag, o));
    return tag;
  };
  /** Settles the oldest running check (a microtask turn later, its outcome is known). */
  const finish = async (ok: boolean) => {
    started.shift()!.settle(ok);
    await flush();
  };
  return { gate, started, outcomes, submit, finish, tick: (ms: number) => (t += ms) };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

test('a source gets at most perSource checks waiting or running; the next is refused busy at once', async () => {
  const r = rig({ running: 1, perSource: 3 });
  const tags = [1, 2, 3, 4].map((i) => r.submit('10.0.0.1', `ghost-${i}`));
  await flush();
  assert.is(r.outcomes.get(tags[3]), 'busy');
  assert.is(r.started.length, 1, 'one running');
  assert.is(r.gate.pending, 3);
  // Another source is not affected.
  r.submit('10.0.0.2', 'ghost-9');
  await flush();
  assert.is(r.gate.pending, 4);
});

test('a client whose proofs hold goes ahead of every source that failed checks lately, however often it logs in', async () => {
  const r = rig({ running: 1, perSource: 4, queued: 64 });
  // Ten guessing sources, every check failing.
  for (let round = 0; round < 3; round++) for (let s = 0; s < 10; s++) r.submit(`10.0.1.${s}`, `ghost-${round}-${s}`);
  await flush();
  for (let i = 0; i < 12; i++) await r.finish(false);
  // The legitimate client logs in again and again while the guessers keep their queues full.
  for (let login = 0; login < 5; login++) {
    for (let s = 0; s < 10; s++) r.submit(`10.0.1.${s}`, `ghost-more-${login}-${s}`);
    const mine = r.submit('192.0.2.7', `fresh-${login}`);
    await flush();
    // At most the one running goes before it.
    await r.finish(false);
    assert.is(r.started[0].source, '192.0.2.7', `login ${login} runs next`);
    await r.finish(true);
    assert.is(r.outcomes.get(mine), 'ok');
  }
});

test('among sources that never failed, the one served longest ago goes first: a newcomer is not behind the queue of another', async () => {
  const r = rig({ running: 1, perSource: 4 });
  for (let i = 0; i < 4; i++) r.submit('10.0.2.1', `a-${i}`);
  await flush();
  r.submit('10.0.2.2', 'b-0');
  await flush();
  await r.finish(true); // a-0
  assert.is(r.started[0].id, 'b-0', 'the newcomer before the second check of the first source');
});

test('a full queue: the newest check of the source with the most waiting gives way to a source with fewer; with equal counts, to one that failed less', async () => {
  const r = rig({ running: 1, perSource: 4, queued: 6 });
  r.submit('10.0.3.1', 'x'); // runs
  await flush();
  const a = [0, 1, 2].map((i) => r.submit('10.0.3.1', `a-${i}`));
  const b = [0, 1, 2].map((i) => r.submit('10.0.3.2', `b-${i}`));
  await flush();
  assert.is(r.gate.pending, 7);
  const c = r.submit('10.0.3.3', 'c');
  await flush();
  // 10.0.3.1 and .2 tie on 3 waiting; the first found gives way.
  assert.is(r.outcomes.get(a[2]), 'busy');
  assert.not.ok(r.outcomes.has(c));
  // Now .1 has 2 waiting, .2 has 3, .3 has 1: .2 gives way to a fourth source.
  const d = r.submit('10.0.3.4', 'd');
  await flush();
  assert.is(r.outcomes.get(b[2]), 'busy');
  assert.not.ok(r.outcomes.has(d));
  // .1 and .2 have 2 waiting, the others 1: a newcomer takes the place of the newest of .1.
  const e = r.submit('10.0.3.5', 'e');
  await flush();
  assert.is(r.outcomes.get(a[1]), 'busy');
  const f = r.submit('10.0.3.6', 'f');
  await flush();
  assert.is(r.outcomes.get(b[1]), 'busy');
  assert.not.ok(r.outcomes.has(e) || r.outcomes.has(f));
  // Six sources with one waiting each, none failed: a newcomer is refused.
  const g = r.submit('10.0.3.7', 'g');
  await flush();
  assert.is(r.outcomes.get(g), 'busy');
  // x fails: 10.0.3.1 has failed lately. Its waiting check is not the one started next.
  await r.finish(false);
  assert.is(r.started[0].source, '10.0.3.2');
  const g2 = r.submit('10.0.3.7', 'g2');
  await flush();
  assert.is(r.gate.pending, 7, 'room for one');
  // Full again, one each: the source that failed gives way to one that did not.
  const h = r.submit('10.0.3.8', 'h');
  await flush();
  assert.is(r.outcomes.get(a[0]), 'busy');
  assert.not.ok(r.outcomes.has(h) || r.outcomes.has(g2));
});

test('guesses per id: 5 failures run, then one check at a time after a delay that doubles; in between, throttled without running; a success resets', async () => {
  const r = rig({ running: 4, perSource: 100, freeFailures: 5, backoffMs: 1000, maxBackoffMs: 8000 });
  for (let i = 0; i < 5; i++) {
    r.submit(`10.0.4.${i}`, 'alice');
    await flush();
    await r.finish(false);
  }
  assert.equal(r.gate.guesses('alice'), { failures: 5, retryInMs: 1000 });
  const t = r.submit('10.0.4.9', 'alice');
  await flush();
  assert.is(r.outcomes.get(t), 'throttled');
  assert.is(r.started.length, 0, 'not run');
  // Ids nobody guessed, and other ids, are not affected.
  r.submit('10.0.4.9', 'bob');
  await flush();
  assert.is(r.started.length, 1);
  await r.finish(true);
  const delays: number[] = [];
  for (let k = 0; k < 5; k++) {
    r.tick(r.gate.guesses('alice').retryInMs);
    // Two at once after the delay: one runs, the other is throttled.
    const one = r.submit('10.0.4.1', 'alice');
    const two = r.submit('10.0.4.2', 'alice');
    await flush();
    assert.is(r.outcomes.get(two), 'throttled');
    await r.finish(false);
    assert.is(r.outcomes.get(one), 'failed');
    delays.push(r.gate.guesses('alice').retryInMs);
  }
  assert.equal(delays, [2000, 4000, 8000, 8000, 8000]);
  r.tick(8000);
  r.submit('10.0.4.1', 'alice');
  await flush();
  await r.finish(true);
  assert.equal(r.gate.guesses('alice'), { failures: 0, retryInMs: 0 });
});

test('failures of an id are forgotten forgetMs after the last one; the ids remembered are bounded', async () => {
  const r = rig({ running: 4, perSource: 100, forgetMs: 60_000, ids: 3 });
  r.submit('10.0.5.1', 'carol');
  await flush();
  await r.finish(false);
  assert.is(r.gate.guesses('carol').failures, 1);
  r.tick(60_000);
  assert.is(r.gate.guesses('carol').failures, 0);
  for (const id of ['d1', 'd2', 'd3', 'd4']) {
    r.submit('10.0.5.1', id);
    await flush();
    await r.finish(false);
  }
  assert.is(r.gate.guesses('d1').failures, 0, 'the least recently tried is forgotten');
  assert.is(r.gate.guesses('d4').failures, 1);
});

test('a check that waited maxWaitMs is refused busy instead of running late', async () => {
  const r = rig({ running: 1, perSource: 10, maxWaitMs: 5000 });
  r.submit('10.0.6.1', 'a');
  const late = r.submit('10.0.6.2', 'b');
  await flush();
  r.tick(5000);
  await r.finish(false);
  assert.is(r.outcomes.get(late), 'busy');
  assert.is(r.gate.pending, 0);
});

test('the rate: checks start at most `rate` a second after a burst, whatever the room', async () => {
  // The gate's timer does not hold a process open (the server's sockets do): this test's does.
  const alive = setInterval(() => {}, 1000);
  try {
    const gate = new AuthGate({ rate: 20, burst: 2, running: 10, perSource: 10 });
    const starts: number[] = [];
    const t0 = Date.now();
    const all = Array.from({ length: 5 }, (_, i) =>
      gate.submit('10.0.7.1', `r-${i}`, async () => {
        starts.push(Date.now() - t0);
        return false;
      }),
    );
    const out = await Promise.all(all);
    assert.equal(out, ['failed', 'failed', 'failed', 'failed', 'failed']);
    assert.ok(starts[1] < 40, `the burst at once: ${starts}`);
    // 3 more at 20/s: the last no sooner than 150 ms (a little less for timer rounding).
    assert.ok(starts[4] >= 130, `then paced: ${starts}`);
    gate.close();
  } finally {
    clearInterval(alive);
  }
});

test('close() refuses what waits', async () => {
  const r = rig({ running: 1, perSource: 10 });
  r.submit('10.0.8.1', 'a');
  const waiting = r.submit('10.0.8.1', 'b');
  await flush();
  r.gate.close();
  await flush();
  assert.is(r.outcomes.get(waiting), 'busy');
});

test.run();
