// simplevpn/hmac (client-sdk/src/hmac.ts): the pure-JS SHA-256 and HMAC-SHA256 against the
// RFC 4231 test vectors and against node:crypto on random inputs of every length around the
// block boundaries; its prover against the server's verifier.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { ROOT } from '../../support/paths.js';
import { hmacSha256, keyCredentials, scramProof, sha256 } from '../../../client-sdk/src/hmac.js';
import { challengeCredentials } from '../../../client-sdk/node/auth.js';
import { authMessage, challengeMessage, extMessage, KIND_REQUEST, ANY, T_AUTH_ID, ascii } from '../../../protocol/index.js';
import { newDeviceKey, hashSecret } from '../../../server/src/control/auth.js';
import { parseVerifier, verifyProof } from '../../../server/src/control/auth-scram.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 4231 section 4: test cases 1-4, 6 and 7 (5 is truncated output), HMAC-SHA-256.
const RFC4231: Array<[key: Buffer, data: Buffer, mac: string]> = [
  [Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
  [Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
  [Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
  [h('0102030405060708090a0b0c0d0e0f10111213141516171819'), Buffer.alloc(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
  [Buffer.alloc(131, 0xaa), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
  [
    Buffer.alloc(131, 0xaa),
    Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
    '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
  ],
];

test('HMAC-SHA256 gives the RFC 4231 test vectors', () => {
  for (const [key, data, mac] of RFC4231) assert.is(hex(hmacSha256(key, data)), mac);
});

test('SHA-256 of the FIPS 180-4 examples: "", "abc", and the two-block message', () => {
  assert.is(hex(sha256(new Uint8Array(0))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.is(hex(sha256(Buffer.from('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  assert.is(hex(sha256(Buffer.from('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'))), '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1');
});

test('SHA-256 and HMAC-SHA256 agree with node:crypto on random inputs of every length from 0 to 300 bytes, and keys of 0 to 200', () => {
  for (let n = 0; n <= 300; n++) {
    const data = randomBytes(n);
    assert.is(hex(sha256(data)), createHash('sha256').update(data).digest('hex'), `sha256 of ${n} bytes`);
    const key = randomBytes((n * 7) % 201);
    assert.is(hex(hmacSha256(key, data)), createHmac('sha256', key).update(data).digest('hex'), `hmac of ${n} bytes, key ${key.length}`);
  }
  const big = randomBytes(100_003);
  assert.is(hex(sha256(big)), createHash('sha256').update(big).digest('hex'), '100 kB');
});

const request = (id: string, address = 0) => extMessage(address, ANY, KIND_REQUEST, [[T_AUTH_ID, ascii(id)]]);

test('keyCredentials answers a challenge with a proof the server verifies, for that nonce, id and address only', () => {
  const { secret, key } = newDeviceKey();
  const v = parseVerifier(secret)!;
  const creds = keyCredentials('sensor-1', Buffer.from(key, 'base64url'));
  const nonce = randomBytes(32);
  const req = request('sensor-1', 0x0a000005);
  const proof = creds.prove(challengeMessage(0x0a000005, nonce, v), req);
  assert.is(proof.length, 32);
  assert.ok(verifyProof(v.hash, authMessage('sensor-1', nonce, 0x0a000005), proof));
  assert.not.ok(verifyProof(v.hash, authMessage('sensor-1', randomBytes(32), 0x0a000005), proof), 'another nonce');
  assert.not.ok(verifyProof(v.hash, authMessage('sensor-2', nonce, 0x0a000005), proof), 'another id');
  assert.not.ok(verifyProof(v.hash, authMessage('sensor-1', nonce, 0x0a000006), proof), 'another address');
  // The pure-JS proof is node:crypto's.
  assert.is(hex(proof), hex(challengeCredentials('sensor-1', { key: Buffer.from(key, 'base64url') }).prove(challengeMessage(0x0a000005, nonce, v), req) as Uint8Array));
  assert.throws(() => keyCredentials('x', new Uint8Array(31)), /32 bytes/);
});

test('challengeCredentials from a secret derives the key with the challenge KDF (once per salt) and proves it; a wrong secret does not', async () => {
  const v = parseVerifier(await hashSecret('correct horse battery staple'))!;
  const nonce = randomBytes(32);
  const good = challengeCredentials('alice', { secret: 'correct horse battery staple' });
  const p1 = await good.prove(challengeMessage(0, nonce, v), request('alice'));
  assert.ok(verifyProof(v.hash, authMessage('alice', nonce, 0), p1));
  const nonce2 = randomBytes(32);
  assert.ok(verifyProof(v.hash, authMessage('alice', nonce2, 0), await good.prove(challengeMessage(0, nonce2, v), request('alice'))));
  const bad = challengeCredentials('alice', { secret: 'correct horse battery stapler' });
  assert.not.ok(verifyProof(v.hash, authMessage('alice', nonce, 0), await bad.prove(challengeMessage(0, nonce, v), request('alice'))));
  // A server asking for a gigabyte of scrypt is refused, not obeyed.
  await Promise.resolve(good.prove(challengeMessage(0, nonce, { ...v, N: 2 ** 20 }), request('alice'))).then(
    () => assert.unreachable('proved'),
    (e: Error) => assert.match(e.message, /beyond what this client spends/),
  );
});

test('scramProof is ClientKey XOR HMAC(SHA-256(ClientKey), message)', () => {
  const key = randomBytes(32);
  const msg = randomBytes(77);
  const sig = createHmac('sha256', createHash('sha256').update(key).digest()).update(msg).digest();
  assert.is(hex(scramProof(key, msg)), hex(sig.map((b, i) => b ^ key[i])));
});

test('the device bundle (dist/sdk/simplevpn-hmac.iife.js) runs in a bare context and defines simplevpnHmac, which agrees with node:crypto', () => {
  const code = readFileSync(join(ROOT, 'dist/sdk/simplevpn-hmac.iife.js'), 'utf8');
  const ctx = vm.createContext({});
  vm.runInContext(code, ctx);
  const lib = vm.runInContext('simplevpnHmac', ctx) as { hmacSha256: typeof hmacSha256; keyCredentials: typeof keyCredentials };
  const key = randomBytes(40);
  const data = randomBytes(99);
  assert.is(hex(lib.hmacSha256(new Uint8Array(key), new Uint8Array(data))), createHmac('sha256', key).update(data).digest('hex'));
  assert.is(typeof lib.keyCredentials('x', new Uint8Array(32)).prove, 'function');
});

test.run();
