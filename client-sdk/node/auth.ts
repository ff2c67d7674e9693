// Challenge-response credentials for the SDK's Client on Node, with node:crypto: from a
// secret (scrypt with the parameters and salt the server's challenge names, once per salt,
// then HMAC-SHA256) or from a device key (`simplevpn-server --new-device-key`). The proof is
// SCRAM's (RFC 5802): ClientKey XOR HMAC-SHA256(SHA-256(ClientKey), authMessage); see
// server/src/control/auth-scram.ts for the whole chain.

import { createHash, createHmac, scrypt } from 'node:crypto';
import { type Kdf, readChallenge } from '../../protocol/index.js';

/** What the Client's `credentials` option takes: an id, and a prove() answering challenges. */
export interface ChallengeCredentials {
  id: string;
  prove(challenge: Uint8Array, request: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

// A hostile server must not make a client spend a gigabyte: scrypt at most 2^17 x 16 x 128 B.
const MAX_LOG_N = 17;
const MAX_R = 16;
const MAX_P = 4;

function proofOf(clientKey: Uint8Array, message: Uint8Array): Uint8Array {
  const stored = createHash('sha256').update(clientKey).digest();
  const p = createHmac('sha256', stored).update(message).digest();
  for (let i = 0; i < 32; i++) p[i] ^= clientKey[i];
  return p;
}

/** ClientKey from a secret: HMAC-SHA256(scrypt(secret, salt, N, r, p), "Client Key"). */
export function clientKeyFromSecret(secret: string | Uint8Array, kdf: Kdf): Promise<Buffer> {
  if (kdf.N > 2 ** MAX_LOG_N || kdf.r > MAX_R || kdf.p > MAX_P || kdf.N < 2 || kdf.r < 1 || kdf.p < 1)
    return Promise.reject(new Error(`the server asks for scrypt N=${kdf.N} r=${kdf.r} p=${kdf.p}, beyond what this client spends (N ≤ 2^${MAX_LOG_N}, r ≤ ${MAX_R}, p ≤ ${MAX_P})`));
  return new Promise((resolve, reject) =>
    scrypt(secret, kdf.salt, 32, { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r + (1 << 20) }, (err, k) =>
      err ? reject(err) : resolve(createHmac('sha256', k).update('Client Key').digest()),
    ),
  );
}

/**
 * Credentials that answer the server's challenge: with `key`, a 32-byte device key, at
 * once; with `secret`, after deriving the key (one scrypt per server salt, remembered).
 */
export function challengeCredentials(id: string, from: { secret: string | Uint8Array } | { key: Uint8Array }): ChallengeCredentials {
  if ('key' in from && from.key.length !== 32) throw new Error('a device key is 32 bytes');
  let derivedFor = '';
  let derived: Promise<Buffer> | null = null;
  return {
    id,
    prove(challenge, request) {
      const c = readChallenge(challenge, request, id);
      if (c === null) return Promise.reject(new Error('the challenge carries no nonce'));
      if ('key' in from) return proofOf(from.key, c.message);
      if (c.kdf === null) return Promise.reject(new Error('the challenge does not say how to derive the key from the secret'));
      const kdf: Kdf = c.kdf;
      const tag = `${kdf.N}/${kdf.r}/${kdf.p}/${Buffer.from(kdf.salt).toString('hex')}`;
      if (derived === null || tag !== derivedFor) {
        derivedFor = tag;
        derived = clientKeyFromSecret(from.secret, { ...kdf, salt: Buffer.from(kdf.salt) });
        derived.catch(() => (derived = null));
      }
      const message = c.message; // a copy already: the challenge's bytes are valid during this call only
      return derived.then((k) => proofOf(k, message));
    },
  };
}
