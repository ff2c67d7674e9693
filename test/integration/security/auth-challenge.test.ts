// Challenge-response over the wire (server/src/control/admission.ts, auth.ts): the SDK with
// a secret (simplevpn/node) or a device key (simplevpn/hmac) gets in without the secret
// crossing the network; a captured proof replayed on another connection is refused; wrong
// proofs go through the guess limiter; --auth-bearer decides where the secret itself is
// taken; a 2013 client, and a server without --auth, are unaffected.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KIND_CHALLENGE,
  KIND_REFUSAL,
  KIND_REPLY,
  KIND_RESPONSE,
  REFUSE_AUTH_FAILED,
  REFUSE_BEARER,
  REFUSE_RATE,
  T_AUTH_PROOF,
  credentials,
  extKind,
  extMessage,
  readChallenge,
  readRefusal,
  ANY,
  type Tlv,
} from '../../../protocol/index.js';
import { keyCredentials } from '../../../client-sdk/src/hmac.js';
import { challengeCredentials } from '../../../client-sdk/node/auth.js';
import { tcpConnect } from '../../../client-sdk/node/tcp.js';
import type { Connect } from '../../../client-sdk/src/types.js';
import { newDeviceKey } from '../../../server/src/control/auth.js';
import { parseVerifier, sha256 } from '../../../server/src/control/auth-scram.js';
import { runCli } from '../../support/server-cli.js';
import { type RawClient, SEED_DYNAMIC, extRequest, hex, ip, waitFor, withServer } from '../../support/server-net.js';
import { type TestClient, authText, memoryLogger, newSecret, rawRequest, replyAddress, tlsSdk, makePki, type Pki } from '../../support/security-kit.js';

const ALICE: TestClient = { id: 'alice', secret: newSecret() };
const DEVICE = newDeviceKey();
const DEVICE_KEY = Buffer.from(DEVICE.key, 'base64url');
let tmp = '';
let authFile = '';
let pki: Pki;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-challenge-'));
  const json = JSON.parse(await authText([ALICE]));
  json.clients.push({ id: 'dev-1', secret: DEVICE.secret });
  authFile = join(tmp, 'auth.json');
  writeFileSync(authFile, JSON.stringify(json));
  pki = makePki();
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  pki?.cleanup();
});

const withAuth = (fn: Parameters<typeof withServer>[1], opts: Parameters<typeof withServer>[0] = {}) =>
  withServer({ subnet: '10.7.0.0/24', auth: authFile, ...opts }, fn);

/** Sends a request naming `id` (no proof) and returns the challenge, or fails. */
async function challenged(c: RawClient, id: string, addr = 0): Promise<{ challenge: Uint8Array; request: Uint8Array }> {
  const request = extRequest(addr, credentials(id));
  const before = c.frames.length;
  c.write(request);
  await waitFor(() => c.frames.length > before || c.closed, 3000, 'the challenge');
  const challenge = c.frames[before];
  assert.ok(challenge && extKind(challenge) === KIND_CHALLENGE, 'a challenge (kind 4)');
  return { challenge, request };
}

/** Sends a response carrying `proof`; returns the server's answer (null: closed without one). */
async function respond(c: RawClient, proof: Uint8Array, addr = 0): Promise<Uint8Array | null> {
  const before = c.frames.length;
  c.write(extMessage(addr, ANY, KIND_RESPONSE, [[T_AUTH_PROOF, proof] as Tlv]));
  await waitFor(() => c.frames.length > before || c.closed, 3000, 'an answer to the response');
  return c.frames[before] ?? null;
}

test('the SDK with a secret (simplevpn/node) and with a device key (simplevpn/hmac) gets in by challenge-response; the secret never crosses the wire', async () => {
  await withAuth(
    async (h) => {
      // Every byte the client sends, recorded.
      const sent: Buffer[] = [];
      const recording: Connect = (hs) => {
        const s = tcpConnect({ host: '127.0.0.1', port: h.port })(hs);
        return { write: (d) => (sent.push(Buffer.from(d)), s.write(d)), close: () => s.close() };
      };
      const a = await h.sdk({ connect: recording, credentials: challengeCredentials('alice', { secret: ALICE.secret }) }).ready(8000);
      assert.not.ok(Buffer.concat(sent).includes(ALICE.secret), 'the secret was sent');
      assert.ok(sent.some((b) => extKind(b) === KIND_RESPONSE), 'a response was sent');
      const d = await h.sdk({ credentials: keyCredentials('dev-1', DEVICE_KEY) }).ready();
      assert.ok(a.address && d.address && a.address !== d.address);
      const ids = h.server.clients().map((c) => c.client).sort();
      assert.equal(ids, ['alice', 'dev-1']);
      assert.is(h.metrics.refusals.auth_failed ?? 0, 0);
    },
    { authBearer: 'off' },
  );
});

test('a captured proof replayed on another connection is refused (auth_failed), and a second response to one challenge is ignored', async () => {
  await withAuth(async (h) => {
    const c1 = await h.raw();
    const { challenge, request } = await challenged(c1, 'dev-1');
    const proof = keyCredentials('dev-1', DEVICE_KEY).prove(challenge, request);
    const ok = await respond(c1, proof);
    assert.ok(ok && extKind(ok) === KIND_REPLY, 'the genuine response is granted');
    assert.ok(replyAddress(ok!) !== 0);
    // An eavesdropper replays that proof: its connection gets a fresh nonce.
    const c2 = await h.raw();
    const second = await challenged(c2, 'dev-1');
    assert.is.not(hex(readChallenge(second.challenge, second.request, 'dev-1')!.message), hex(readChallenge(challenge, request, 'dev-1')!.message), 'a fresh nonce');
    const refused = await respond(c2, proof);
    assert.ok(refused && extKind(refused) === KIND_REFUSAL, 'refused');
    assert.is(readRefusal(refused!).code, REFUSE_AUTH_FAILED);
    await c2.waitClosed();
    // A response with no challenge outstanding is ignored, like any stray control message.
    const c3 = await h.raw();
    c3.write(extMessage(0, ANY, KIND_RESPONSE, [[T_AUTH_PROOF, proof]]));
    const f = await rawRequest(c3, 0, credentials('dev-1'));
    assert.is(extKind(f!), KIND_CHALLENGE, 'the stray response did nothing; the request is challenged');
    assert.is(h.metrics.refusals.auth_failed, 1);
  });
});

test('wrong proofs are guesses: counted per id, then throttled (REFUSE_RATE, auth_throttled) and logged as auth_backoff', async () => {
  const logger = memoryLogger();
  await withAuth(
    async (h) => {
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) {
        const c = await h.raw();
        await challenged(c, 'alice');
        const f = await respond(c, new Uint8Array(32).fill(i));
        codes.push(f ? readRefusal(f).code : -1);
        c.destroy();
      }
      assert.equal(codes.slice(0, 5), [REFUSE_AUTH_FAILED, REFUSE_AUTH_FAILED, REFUSE_AUTH_FAILED, REFUSE_AUTH_FAILED, REFUSE_AUTH_FAILED]);
      assert.ok(codes.slice(5).every((c) => c === REFUSE_RATE), `then throttled: ${codes}`);
      assert.ok(h.auth!.guesses('alice').failures >= 5);
      assert.ok(logger.find('auth_backoff').length >= 1, 'auth_backoff logged');
      assert.ok(h.metrics.refusals.auth_throttled >= 1);
      // The right answer, from a client never proven, waits out the backoff like any guess.
      const c = await h.raw();
      const { challenge, request } = await challenged(c, 'alice');
      const right = await challengeCredentials('alice', { secret: ALICE.secret }).prove(challenge, request);
      const f = await respond(c, right);
      assert.is(readRefusal(f!).code, REFUSE_RATE);
    },
    { logger },
  );
});

test('--auth-bearer: the secret itself is refused when off (REFUSE_BEARER), taken when any, and only over TLS when tls', async () => {
  await withAuth(
    async (h) => {
      const down = await h.sdk({ credentials: { id: 'alice', secret: ALICE.secret } }).start().waitState('down');
      assert.is(down.code, REFUSE_BEARER);
      assert.match(down.detail, /does not take the secret itself: answer its challenge/);
      assert.is(h.metrics.refusals.bearer_refused, 1);
    },
    { authBearer: 'off' },
  );
  await withAuth(
    async (h) => {
      assert.match((await h.sdk({ credentials: { id: 'alice', secret: ALICE.secret } }).ready(8000)).address!, /^10\.7\.0\./);
    },
    { authBearer: 'any' },
  );
  await withAuth(
    async (h) => {
      const plain = await h.sdk({ credentials: { id: 'alice', secret: ALICE.secret } }).start().waitState('down');
      assert.is(plain.code, REFUSE_BEARER);
      assert.match(plain.detail, /over an unencrypted connection/);
      const overTls = await tlsSdk(h, { ca: pki.caPem }, { credentials: { id: 'alice', secret: ALICE.secret } }).ready(8000);
      assert.match(overTls.address!, /^10\.7\.0\./);
    },
    { authBearer: 'tls', tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0 },
  );
});

test('a 2013 client is unaffected: byte-exact seed reply without --auth; with --auth still closed without a reply, never challenged', async () => {
  await withServer({ subnet: '10.7.0.0/24' }, async (h) => {
    const c = await h.raw();
    c.write(SEED_DYNAMIC);
    const r = await c.read(20);
    assert.is(hex(r.subarray(0, 16)), '45 14 00 00 00 00 00 00 40 00 00 00 00 00 00 00');
    assert.ok(replyAddress(r) !== 0);
    // An id without a proof to a server without --auth: no challenge, the address.
    const c2 = await h.raw();
    const f = await rawRequest(c2, 0, credentials('anyone'));
    assert.is(extKind(f!), KIND_REPLY);
  });
  await withAuth(async (h) => {
    const c = await h.raw();
    c.write(SEED_DYNAMIC);
    await c.waitClosed();
    assert.is(c.frames.length, 0, 'no reply, no challenge');
  });
});

test('the proof binds the address requested: a request whose address was changed on the way fails', async () => {
  await withAuth(async (h) => {
    const c = await h.raw();
    // The server saw a request for 10.7.0.10; the client had asked for 10.7.0.9 and proves that.
    const { challenge } = await challenged(c, 'dev-1', ip('10.7.0.10'));
    const proof = keyCredentials('dev-1', DEVICE_KEY).prove(challenge, extRequest(ip('10.7.0.9'), credentials('dev-1')));
    const f = await respond(c, proof, ip('10.7.0.10'));
    assert.is(readRefusal(f!).code, REFUSE_AUTH_FAILED);
    // Proved for the address the server saw, it holds.
    const c2 = await h.raw();
    const ch = await challenged(c2, 'dev-1', ip('10.7.0.9'));
    const ok = await respond(c2, keyCredentials('dev-1', DEVICE_KEY).prove(ch.challenge, ch.request), ip('10.7.0.9'));
    assert.is(replyAddress(ok!), ip('10.7.0.9'));
  });
});

test('the CLI: --new-device-key prints an entry and a key that verify each other; bad --auth-bearer and --cert-id values exit 2 naming the choices', async () => {
  const r = await runCli(['--new-device-key']);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { secret: string; key: string };
  const v = parseVerifier(out.secret)!;
  assert.is(v.kind, 'scram');
  assert.equal(sha256(Buffer.from(out.key, 'base64url')), v.hash, 'the entry holds SHA-256 of the key, not the key');
  assert.not.ok(out.secret.includes(out.key));
  for (const [args, re] of [
    [['--auth-bearer', 'maybe'], /--auth-bearer must be one of any, tls, off, got "maybe"/],
    [['--cert-id', 'san'], /--cert-id must be one of cn, off, got "san"/],
  ] as const) {
    const bad = await runCli(['--no-tun', '--host', '127.0.0.1', '--port', '0', ...args]);
    assert.is(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, re);
  }
});

test.run();
