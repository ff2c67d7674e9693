// Challenge-response for devices: SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104) in plain
// JavaScript, and a prover that answers a server's challenge with a device key. The
// package's simplevpn/hmac, bundled apart from the core (its 4 KiB budget is for what every
// device needs). A device given a key by `simplevpn-server --new-device-key` needs nothing
// else: no scrypt, no secret. On Node, simplevpn/node's provers use node:crypto instead.
//
//   proof = ClientKey XOR HMAC-SHA256(SHA-256(ClientKey), authMessage)    (SCRAM, RFC 5802)

import { readChallenge } from '../../protocol/index.js';

const K = new Int32Array(64);
// The round constants: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
for (let n = 2, i = 0; i < 64; n++) {
  let prime = true;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) prime = false;
  if (prime) K[i++] = ((Math.pow(n, 1 / 3) % 1) * 2 ** 32) | 0;
}
const H0 = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n));

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  const len = data.length;
  // The message, a 0x80 byte, zeros, and the length in bits: a multiple of 64 bytes.
  const blocks = new Uint8Array(((len + 72) >> 6) << 6);
  blocks.set(data);
  blocks[len] = 0x80;
  const bits = len * 8;
  const end = blocks.length;
  blocks[end - 5] = bits / 2 ** 32;
  for (let i = 1; i <= 4; i++) blocks[end - i] = bits >>> (8 * (i - 1));
  const h = H0.slice();
  const w = new Int32Array(64);
  for (let o = 0; o < end; o += 64) {
    for (let t = 0; t < 16; t++) w[t] = (blocks[o + 4 * t] << 24) | (blocks[o + 4 * t + 1] << 16) | (blocks[o + 4 * t + 2] << 8) | blocks[o + 4 * t + 3];
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15];
      const b = w[t - 2];
      w[t] = (rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10)) + w[t - 7] + (rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3)) + w[t - 16];
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    const v = [a, b, c, d, e, f, g, k];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + v[i]) | 0;
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = h[i >> 2] >>> (24 - 8 * (i & 3));
  return out;
}

/** HMAC-SHA256 of `message` under `key`. */
export function hmacSha256(key: Uint8Array, message: Uint8Array): Uint8Array {
  const k = new Uint8Array(64);
  k.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(96);
  for (let i = 0; i < 64; i++) {
    inner[i] = k[i] ^ 0x36;
    outer[i] = k[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

/** The proof of `clientKey` over `message`: ClientKey XOR HMAC(SHA-256(ClientKey), message). */
export function scramProof(clientKey: Uint8Array, message: Uint8Array): Uint8Array {
  const p = hmacSha256(sha256(clientKey), message);
  for (let i = 0; i < 32; i++) p[i] ^= clientKey[i];
  return p;
}

/**
 * Credentials for the SDK's Client that answer challenges with a device key (32 bytes, as
 * `simplevpn-server --new-device-key` prints it, decoded from base64url).
 */
export function keyCredentials(id: string, clientKey: Uint8Array): { id: string; prove: (challenge: Uint8Array, request: Uint8Array) => Uint8Array } {
  if (clientKey.length !== 32) throw new Error('a device key is 32 bytes');
  return {
    id,
    prove(challenge, request) {
      // A challenge without a nonce (not a server's) gets an empty proof, which the server refuses.
      const c = readChallenge(challenge, request, id);
      return c ? scramProof(clientKey, c.message) : new Uint8Array(0);
    },
  };
}
