// The SDK client's side of challenge-response (client-sdk/src/client.ts): with a prove()
// hook the request names the id only, the challenge is answered with the proof (at once or
// when a promise settles), a proof for a connection that is gone is never sent, and a
// challenge it cannot answer takes the link down with a reason instead of hanging.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Client } from '../../../client-sdk/src/client.js';
import type { ClientOptions, DownInfo, StateInfo } from '../../../client-sdk/src/client.js';
import { KIND_REQUEST, KIND_RESPONSE, T_AUTH_ID, T_AUTH_PROOF, authMessage, challengeMessage, eachTlv, extKind } from '../../../protocol/index.js';
import { FakeClock, FakeNet, extReply, hex } from '../../support/sdk-fakes.js';
import { keyCredentials, scramProof } from '../../../client-sdk/src/hmac.js';

const NONCE = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);
const KDF = { N: 4096, r: 8, p: 1, salt: new Uint8Array(16) };
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i * 3);

function setup(credentials: ClientOptions['credentials'], address?: string) {
  const clock = new FakeClock();
  const net = new FakeNet();
  const states: StateInfo[] = [];
  const client = new Client({ connect: net.connect, tun: { write: () => {} }, clock, random: () => 0.5, credentials, address, onState: (s) => void states.push(s) });
  client.start();
  net.last.open();
  return { client, clock, net, states, last: () => states[states.length - 1] };
}

const tlvs = (f: Uint8Array) => {
  const out: Array<[number, string]> = [];
  eachTlv(f, (t, v) => out.push([t, hex(v)]));
  return out;
};
const proofOf = (f: Uint8Array) => tlvs(f).find(([t]) => t === T_AUTH_PROOF)?.[1];

test('with prove(): the request names the id without a proof; a synchronous proof answers the challenge at once', () => {
  const seen: Array<[Uint8Array, Uint8Array]> = [];
  const s = setup({ id: 'sensor-7', prove: (c, r) => (seen.push([c.slice(), r.slice()]), scramProof(KEY, authMessage('sensor-7', NONCE, 0))) });
  const sock = s.net.last;
  const req = sock.writes[0];
  assert.is(extKind(req), KIND_REQUEST);
  assert.equal(tlvs(req).map(([t]) => t), [T_AUTH_ID]);
  const challenge = challengeMessage(0, NONCE, KDF);
  sock.deliver(challenge);
  assert.is(sock.writes.length, 2);
  const resp = sock.writes[1];
  assert.is(extKind(resp), KIND_RESPONSE);
  assert.is(proofOf(resp), hex(scramProof(KEY, authMessage('sensor-7', NONCE, 0))));
  assert.equal(seen.map(([c, r]) => [hex(c), hex(r)]), [[hex(challenge), hex(req)]], 'prove() got the challenge and the request');
  sock.deliver(extReply('10.0.0.5', { prefix: 24 }));
  assert.is(s.last().state, 'ready');
});

test('keyCredentials (simplevpn/hmac) plugs in as is; the response carries the static address asked for', () => {
  const s = setup(keyCredentials('dev', KEY), '10.0.0.9');
  const sock = s.net.last;
  sock.deliver(challengeMessage(0x0a000009, NONCE, KDF));
  const resp = sock.writes[1];
  assert.is(hex(resp.subarray(12, 20)), '0a 00 00 09 00 00 00 00');
  assert.is(proofOf(resp), hex(scramProof(KEY, authMessage('dev', NONCE, 0x0a000009))));
});

test('a promised proof is sent when it resolves, and not at all if the connection went away meanwhile', async () => {
  let resolve!: (p: Uint8Array) => void;
  const s = setup({ id: 'x', prove: () => new Promise<Uint8Array>((r) => (resolve = r)) });
  const sock = s.net.last;
  sock.deliver(challengeMessage(0, NONCE, KDF));
  assert.is(sock.writes.length, 1, 'nothing yet');
  resolve(new Uint8Array(32).fill(7));
  await Promise.resolve();
  assert.is(sock.writes.length, 2);
  assert.is(proofOf(sock.writes[1]), hex(new Uint8Array(32).fill(7)));

  const t = setup({ id: 'x', prove: () => new Promise<Uint8Array>((r) => (resolve = r)) });
  const first = t.net.last;
  first.deliver(challengeMessage(0, NONCE, KDF));
  first.end();
  resolve(new Uint8Array(32));
  await Promise.resolve();
  assert.is(first.lateWrites + first.writes.length, 1, 'the stale proof was not written anywhere');
});

test('a challenge with no prove() to answer it, or a prove() that rejects, takes the link down with protocol_error', async () => {
  const s = setup({ id: 'x', secret: 'bearer-secret' });
  s.net.last.deliver(challengeMessage(0, NONCE, KDF));
  const d = s.last() as DownInfo;
  assert.equal([d.state, d.reason, d.detail], ['down', 'protocol_error', 'prove(): none given']);
  const r = setup({ id: 'x', prove: () => Promise.reject(new Error('no key')) });
  r.net.last.deliver(challengeMessage(0, NONCE, KDF));
  await new Promise((res) => setTimeout(res, 0));
  const e = r.last() as DownInfo;
  assert.equal([e.reason, e.detail], ['protocol_error', 'prove(): Error: no key']);
});

test.run();
