// The worked examples of PROTOCOL.md's Credentials section, byte for byte from the encoders:
// each example's bytes are read from the document itself, so the document and the code
// cannot drift apart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../support/paths.js';
import {
  ANY,
  KIND_CHALLENGE,
  KIND_REQUEST,
  KIND_RESPONSE,
  REFUSE_IDENTITY,
  T_AUTH_ID,
  T_AUTH_PROOF,
  ascii,
  authMessage,
  challengeMessage,
  credentials,
  extKind,
  extMessage,
  readChallenge,
  refusal,
} from '../../../protocol/index.js';
import { scramProof, sha256 } from '../../../client-sdk/src/hmac.js';

const doc = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8');
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');

/** The bytes of the first code block after the heading `#### Example: <name>`: each line's leading run of two-digit hex tokens. */
function example(name: string): string {
  const at = doc.indexOf(`#### Example: ${name}\n`);
  assert.ok(at >= 0, `PROTOCOL.md has no example "${name}"`);
  const open = doc.indexOf('```\n', at) + 4;
  const block = doc.slice(open, doc.indexOf('```', open));
  const out: string[] = [];
  for (const line of block.split('\n')) {
    for (const tok of line.trim().split(/\s+/)) {
      if (!/^[0-9a-f]{2}$/.test(tok)) break;
      out.push(tok);
    }
  }
  return out.join(' ');
}

const NONCE = Uint8Array.from({ length: 32 }, (_, i) => i);
const SALT = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
const KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i);

test('the request: an id without a proof', () => {
  const req = extMessage(0, ANY, KIND_REQUEST, credentials('sensor-7'));
  assert.is(hex(req), example('the request'));
  assert.is(hex(req), hex(extMessage(0, ANY, KIND_REQUEST, [[T_AUTH_ID, ascii('sensor-7')]])));
});

test('the challenge: nonce and KDF; readChallenge reads back what challengeMessage wrote', () => {
  const ch = challengeMessage(0, NONCE, { N: 4096, r: 8, p: 1, salt: SALT });
  assert.is(hex(ch), example('the challenge'));
  assert.is(extKind(ch), KIND_CHALLENGE);
  const r = readChallenge(ch, extMessage(0, ANY, KIND_REQUEST, credentials('sensor-7')), 'sensor-7')!;
  assert.equal([r.kdf!.N, r.kdf!.r, r.kdf!.p, hex(r.kdf!.salt)], [4096, 8, 1, hex(SALT)]);
  assert.is(hex(r.message), example('the message signed'));
});

test('the message signed, and the response with its proof and StoredKey', () => {
  assert.is(hex(authMessage('sensor-7', NONCE, 0)), example('the message signed'));
  const resp = extMessage(0, ANY, KIND_RESPONSE, [[T_AUTH_PROOF, scramProof(KEY, authMessage('sensor-7', NONCE, 0))]]);
  assert.is(hex(resp), example('the response'));
  assert.ok(doc.includes('`' + hex(sha256(KEY)) + '`'), 'the StoredKey in the text');
});

test('a certificate for another id: refusal code 11', () => {
  assert.is(hex(refusal(0, REFUSE_IDENTITY, 'the client certificate is for "sensor-7", not for "sensor-8"')), example('a certificate for another id'));
});

test('readChallenge: no nonce, no challenge; a KDF of 2^32 or more is not read', () => {
  const req = extMessage(0, ANY, KIND_REQUEST, credentials('a'));
  assert.is(readChallenge(extMessage(0, ANY, KIND_CHALLENGE, []), req, 'a'), null);
  const huge = extMessage(0, ANY, KIND_CHALLENGE, [[19, NONCE], [20, Uint8Array.of(40, 8, 1, 1, 2, 3, 4)]]);
  assert.is(readChallenge(huge, req, 'a')!.kdf, null);
});

test.run();
