// Authenticator.respond (server/src/control/auth.ts) and the verifiers of auth-scram.ts:
// challenge proofs hold for their own nonce only, wrong ones count at the gate like wrong
// secrets, unknown ids look like known ones, and StoredKey cannot be presented to log in.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { authMessage, ascii } from '../../../../protocol/index.js';
import { Authenticator, hashSecret, newDeviceKey, parseAuthFile } from '../../../../server/src/control/auth.js';
import { clientKeyOf, parseVerifier, scryptAsync, sha256 } from '../../../../server/src/control/auth-scram.js';
import { scramProof } from '../../../../client-sdk/src/hmac.js';

const SECRET = 'correct horse battery staple';
let text = '';
let key: Buffer; // the device key of "dev"
let aliceKey: Buffer; // ClientKey derived from SECRET for "alice"

test.before(async () => {
  const dev = newDeviceKey();
  key = Buffer.from(dev.key, 'base64url');
  const alice = await hashSecret(SECRET);
  aliceKey = await clientKeyOf(Buffer.from(SECRET), parseVerifier(alice)!);
  // An entry of the older form: scrypt of the secret, which can verify only the secret itself.
  const salt = randomBytes(16);
  const legacy = `scrypt$4096$8$1$${salt.toString('base64url')}$${(await scryptAsync(Buffer.from(SECRET), { N: 4096, r: 8, p: 1, salt }, 32)).toString('base64url')}`;
  text = JSON.stringify({ clients: [{ id: 'dev', secret: dev.secret }, { id: 'alice', secret: alice }, { id: 'old', secret: legacy }] });
});

const fresh = (gate = {}) => new Authenticator(parseAuthFile(text, () => null), { backoffMs: 60_000, ...gate });
const answer = (k: Uint8Array, id: string, nonce: Uint8Array, addr = 0) => scramProof(k, authMessage(id, nonce, addr));

test('a proof from the device key or from the secret is accepted for its own nonce; the same proof for another nonce is not (no replay)', async () => {
  const auth = fresh();
  const n1 = randomBytes(32);
  const p1 = answer(key, 'dev', n1);
  const r1 = await auth.respond('dev', authMessage('dev', n1, 0), p1, 'a');
  assert.is(typeof r1 === 'object' && r1.id, 'dev');
  const replay = await auth.respond('dev', authMessage('dev', randomBytes(32), 0), p1, 'a');
  assert.is(replay, 'failed', 'a captured proof against a fresh nonce');
  const n2 = randomBytes(32);
  const r2 = await auth.respond('alice', authMessage('alice', n2, 0), answer(aliceKey, 'alice', n2), 'a');
  assert.is(typeof r2 === 'object' && r2.id, 'alice');
  // Bound to the address requested too.
  assert.is(await auth.respond('alice', authMessage('alice', n2, 0x0a000002), answer(aliceKey, 'alice', n2), 'a'), 'failed');
  auth.close();
});

test('wrong proofs count at the gate: after the free failures the id is throttled, its failures recorded', async () => {
  const auth = fresh({ freeFailures: 3 });
  for (let i = 0; i < 3; i++) {
    const n = randomBytes(32);
    assert.is(await auth.respond('dev', authMessage('dev', n, 0), randomBytes(32), 'src-' + i), 'failed');
  }
  assert.is(auth.guesses('dev').failures, 3);
  assert.ok(auth.guesses('dev').retryInMs > 0, 'in backoff');
  const n = randomBytes(32);
  assert.is(await auth.respond('dev', authMessage('dev', n, 0), randomBytes(32), 'other'), 'throttled');
  // Not yet proven, a right proof waits out the backoff too: guessing the secret online stays limited.
  assert.is(await auth.respond('dev', authMessage('dev', n, 0), answer(key, 'dev', n), 'other'), 'throttled');
  auth.close();
});

test('a proven id gets in at once with a right proof while others guess it into backoff', async () => {
  const auth = fresh({ freeFailures: 2 });
  const n0 = randomBytes(32);
  assert.is(typeof (await auth.respond('dev', authMessage('dev', n0, 0), answer(key, 'dev', n0), 'home')), 'object');
  for (let i = 0; i < 4; i++) await auth.respond('dev', authMessage('dev', randomBytes(32), 0), randomBytes(32), 'attacker');
  assert.ok(auth.guesses('dev').retryInMs > 0);
  const n = randomBytes(32);
  assert.is(typeof (await auth.respond('dev', authMessage('dev', n, 0), answer(key, 'dev', n), 'home')), 'object');
  // A reload that changes the entry forgets it.
  const other = newDeviceKey();
  auth.replace(parseAuthFile(JSON.stringify({ clients: [{ id: 'dev', secret: other.secret }] }), () => null));
  const n2 = randomBytes(32);
  assert.is(await auth.respond('dev', authMessage('dev', n2, 0), answer(key, 'dev', n2), 'home'), 'throttled');
  auth.close();
});

test('an unknown id gets a KDF as stable and as plausible as a known one, and fails like a wrong proof', async () => {
  const auth = fresh();
  const a = auth.kdf('nobody');
  const b = auth.kdf('nobody');
  const known = auth.kdf('dev');
  assert.equal([a.N, a.r, a.p, a.salt.length], [known.N, known.r, known.p, known.salt.length]);
  assert.ok(Buffer.from(a.salt).equals(Buffer.from(b.salt)), 'the same salt twice');
  assert.not.ok(Buffer.from(a.salt).equals(Buffer.from(auth.kdf('nobody-else').salt)));
  const n = randomBytes(32);
  assert.is(await auth.respond('nobody', authMessage('nobody', n, 0), randomBytes(32), 'x'), 'failed');
  auth.close();
});

test('what the auth file holds cannot log in: StoredKey as a bearer secret or as a device key is refused', async () => {
  const auth = fresh();
  const stored = parseVerifier(auth.entries.get('dev')!.secret)!.hash;
  assert.is(await auth.verify('dev', stored), null, 'StoredKey presented as the secret');
  const n = randomBytes(32);
  assert.is(await auth.respond('dev', authMessage('dev', n, 0), answer(stored, 'dev', n), 'x'), 'failed', 'StoredKey used as ClientKey');
  assert.equal(sha256(key), stored, 'StoredKey is SHA-256 of the device key');
  auth.close();
});

test('the secret itself (bearer) verifies against a scram entry and against an older scrypt entry; a challenge to the older entry fails and is reported', async () => {
  const auth = fresh();
  const legacy: string[] = [];
  auth.onLegacy = (id) => legacy.push(id);
  assert.is((await auth.verify('alice', ascii(SECRET)))?.id, 'alice');
  assert.is((await auth.verify('old', ascii(SECRET)))?.id, 'old');
  assert.is(await auth.verify('alice', ascii(SECRET + '!')), null);
  const n = randomBytes(32);
  assert.is(await auth.respond('old', authMessage('old', n, 0), answer(aliceKey, 'old', n), 'x'), 'failed');
  assert.equal(legacy, ['old']);
  auth.close();
});

test('a device key entry has no secret: nothing presented as one verifies', async () => {
  const auth = fresh();
  assert.is(await auth.verify('dev', key), null, 'the device key as a bearer secret');
  assert.is(await auth.verify('dev', ascii(key.toString('base64url'))), null, 'its text');
  auth.close();
});

test.run();
