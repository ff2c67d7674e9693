// Guessing credentials must not keep out those who have them (issue 12, item 1): a hostile
// load of 128 connections from 50 source addresses guessing secrets (of a real client's id,
// of other listed ids, of ids that do not exist) against a server in a process of its own,
// while a client whose proof the server verified before logs in 15 times and 15 clients
// never seen before log in once each: every one gets in, each within 1 s. Then, against a
// server in this process: guesses per id with backoff, what is logged, and that a proof
// verified before is taken while its id is throttled.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { scryptSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REPLY, REFUSE_AUTH_FAILED, REFUSE_RATE, credentials, extKind, readRefusal } from '../../../protocol/index.js';
import { guessing } from '../../support/hostile.js';
import { type TestClient, memoryLogger, newSecret, writeAuth } from '../../support/security-kit.js';
import { RawClient, extRequest, sleep, waitFor, withServer } from '../../support/server-net.js';

let tmp = '';
test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-guess-'));
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * How many times slower than quiet this machine is now: the median time of the server's
 * scrypt (N=4096, r=8, p=1) against the 16 ms it takes on a quiet core of the 2-core machine
 * the project is built on. The 1 s target is for a machine at that speed; a starved one
 * (other jobs on its cores) gets proportionally longer, so that the verdict is about the
 * server's fairness, not about the machine's load. Never below 1.
 */
function slowness(): number {
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    scryptSync('calibration', 'a salt of 16 B.', 32, { N: 4096, r: 8, p: 1 });
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return Math.max(1, times[3] / 16);
}

/** The default of --auth-rate: scrypt checks started per second, in bursts of as many. */
const AUTH_RATE = 50;

test('128 connections from 50 addresses guessing secrets: a known client gets in 15 times out of 15 and 15 new ones once each, every time within 1 s; scrypt stays within its rate', async () => {
  const t0 = Date.now();
  const limit = Math.round(1000 * slowness());
  if (limit > 1000) console.log(`  this machine is ${(limit / 1000).toFixed(1)}x slower than quiet (scrypt): each login within ${limit} ms`);
  // Each guessing connection tries again 100 ms after its answer: several hundred guesses a
  // second, far beyond what scrypt can check, yet a load this machine can carry beside the test.
  const r = await guessing({ conns: 128, sources: 50, tries: 15, pace: 100, warmup: 2000, log: true });
  const show = (tries: typeof r.known) => tries.map((t) => `${t.outcome}/${t.ms}ms`).join(' ');
  console.log(`  known: ${show(r.known)}\n  fresh: ${show(r.fresh)}`);
  console.log(`  attack: ${r.attack.tries} guesses in ${r.attack.seconds} s, answers ${JSON.stringify(r.attack.answers)}; server refusals ${JSON.stringify(r.refusals)}`);
  for (const t of [...r.known, ...r.fresh]) {
    assert.is(t.outcome, 'granted', `${t.id}: ${t.outcome} after ${t.ms} ms`);
    assert.ok(t.ms < limit, `${t.id} got in after ${t.ms} ms (limit ${limit} ms)`);
  }
  // The attack was real: many times the guesses scrypt can check, all answered.
  assert.ok(r.attack.tries >= 10 * AUTH_RATE, `${r.attack.tries} guesses`);
  assert.ok(r.attack.unanswered <= r.attack.tries / 100, `${r.attack.unanswered} guesses got no answer`);
  // The scrypt work it caused: within the server-wide rate (and its burst).
  const checked = r.refusals.auth_failed ?? 0;
  assert.ok(checked > 0 && checked <= AUTH_RATE * (r.attack.seconds + 1) + AUTH_RATE, `${checked} checks in ${r.attack.seconds} s`);
  // Guesses of listed ids were throttled without scrypt, and that was logged, a few lines only.
  assert.ok((r.refusals.auth_throttled ?? 0) > 0);
  assert.ok(r.log.some((l) => l.event === 'auth_backoff' && l.client === 'legit'), 'a line about the guessing of "legit"');
  const lines = r.log.filter((l) => l.event === 'refuse' || l.event === 'auth_backoff').length;
  assert.ok(lines < r.attack.tries / 5, `${lines} log lines for ${r.attack.tries} guesses`);
  console.log(`  ${((Date.now() - t0) / 1000).toFixed(1)} s, ${lines} log lines`);
});

/** One login from `local` with `c`'s credentials: the first frame's kind and refusal code. */
async function login(port: number, c: TestClient, local = '127.0.0.1'): Promise<{ granted: boolean; code: number; text: string }> {
  const raw = await RawClient.connect(port, { localAddress: local });
  try {
    raw.write(extRequest(0, credentials(c.id, c.secret)));
    await waitFor(() => raw.frames.length > 0, 5000, 'the answer');
    const f = raw.frames[0];
    const granted = extKind(f) === KIND_REPLY;
    return { granted, ...(granted ? { code: 0, text: '' } : readRefusal(f)) };
  } finally {
    raw.destroy();
  }
}

test('guesses per id: 5 wrong secrets are checked, then the id is throttled (REFUSE_RATE, auth_throttled) without scrypt, logged once; a proof verified before is still taken; an unknown id is treated alike', async () => {
  const alice: TestClient = { id: 'alice', secret: newSecret() };
  const path = await writeAuth(join(tmp, 'auth.json'), [alice]);
  const logger = memoryLogger();
  await withServer({ auth: path, logger }, async (h) => {
    assert.ok((await login(h.port, alice)).granted, 'verified once');
    for (const id of ['alice', 'nobody']) {
      const guess = { id, secret: 'wrong-' + id };
      for (let i = 0; i < 5; i++) assert.is((await login(h.port, guess, '127.0.0.2')).code, REFUSE_AUTH_FAILED, `${id}: guess ${i + 1} is checked`);
      const t0 = Date.now();
      const sixth = await login(h.port, guess, '127.0.0.3');
      assert.is(sixth.code, REFUSE_RATE, `${id}: the sixth is throttled`);
      assert.match(sixth.text, new RegExp(`too many failed attempts for "${id}"; try again in 1 s`));
      assert.ok(Date.now() - t0 < 1000);
    }
    assert.is(h.metrics.refusals.auth_failed, 10, 'ten checks ran, no more');
    assert.is(h.metrics.refusals.auth_throttled, 2);
    // The real client, verified before, is not locked out by those guessing its id.
    assert.ok((await login(h.port, alice)).granted, 'the verified proof while "alice" is throttled');
    const lines = logger.find('auth_backoff');
    assert.equal(
      lines.map((l) => [l.level, l.fields.client, l.fields.failures, l.fields.retry_in_s]),
      [
        ['warn', 'alice', 5, 1],
        ['warn', 'nobody', 5, 1],
      ],
    );
    // After the delay, one more guess is checked, and the next delay is twice as long.
    await sleep(1100);
    assert.is((await login(h.port, { id: 'alice', secret: 'again' }, '127.0.0.4')).code, REFUSE_AUTH_FAILED);
    assert.match((await login(h.port, { id: 'alice', secret: 'again' }, '127.0.0.4')).text, /try again in 2 s/);
    assert.is(h.auth!.pending, 0);
  });
});

test.run();
