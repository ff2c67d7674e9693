// Challenge-response credentials, after SCRAM (RFC 5802, RFC 7677): what the auth file keeps
// cannot be presented to log in.
//
//   SaltedKey = scrypt(secret, salt, N, r, p)      32 bytes; only a client holding the secret computes it
//   ClientKey = HMAC-SHA256(SaltedKey, "Client Key") the device key: a device may be given this instead
//   StoredKey = SHA-256(ClientKey)                  what the auth file holds
//   proof     = ClientKey XOR HMAC-SHA256(StoredKey, authMessage)
//
// The server recovers ClientKey = proof XOR HMAC-SHA256(StoredKey, authMessage) and accepts
// when SHA-256 of it is StoredKey. authMessage (protocol/control.ts) binds the proof to the
// server's nonce, the id and the address requested, so a captured proof opens nothing else.
// A bearer secret (the secret itself, T_AUTH_PROOF in the request) is checked against the
// same StoredKey by running the chain above.

import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { Kdf } from '../../../protocol/index.js';

/** A parsed `scram$N$r$p$salt$StoredKey` or legacy `scrypt$N$r$p$salt$hash` string. */
export interface Verifier extends Kdf {
  /** scram: challenge-response and bearer; scrypt (before challenge-response): bearer only. */
  kind: 'scram' | 'scrypt';
  salt: Buffer;
  /** scram: StoredKey; scrypt: the scrypt hash of the secret. */
  hash: Buffer;
}

/** Parameters for new entries: about 15 ms and 4 MiB per scrypt on a small server. */
export const SCRYPT_DEFAULTS = { N: 4096, r: 8, p: 1 };
const VERIFIER_RE = /^(scrypt|scram)\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;
const CLIENT_KEY_LABEL = Buffer.from('Client Key');

export const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
export const hmac = (key: Uint8Array, msg: Uint8Array): Buffer => createHmac('sha256', key).update(msg).digest();

export function parseVerifier(s: string): Verifier | null {
  const m = VERIFIER_RE.exec(s);
  if (!m) return null;
  const [N, r, p] = [+m[2], +m[3], +m[4]];
  if (N < 2 || (N & (N - 1)) !== 0 || N > 1 << 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const salt = Buffer.from(m[5], 'base64url');
  const hash = Buffer.from(m[6], 'base64url');
  if (salt.length < 8 || salt.length > 64 || (m[1] === 'scram' ? hash.length !== 32 : hash.length < 16)) return null;
  return { kind: m[1] as Verifier['kind'], N, r, p, salt, hash };
}

export function scryptAsync(secret: Uint8Array, k: Kdf, len: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, k.salt, len, { N: k.N, r: k.r, p: k.p, maxmem: 256 * k.N * k.r + (1 << 20) }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** ClientKey from a secret: what a client holding the secret derives, and the bearer check runs. */
export async function clientKeyOf(secret: Uint8Array, kdf: Kdf): Promise<Buffer> {
  return hmac(await scryptAsync(secret, kdf, 32), CLIENT_KEY_LABEL);
}

/** Whether `secret` itself is the one `v` was made from (costs one scrypt). */
export async function verifySecret(v: Verifier, secret: Uint8Array): Promise<boolean> {
  const out = v.kind === 'scram' ? sha256(await clientKeyOf(secret, v)) : await scryptAsync(secret, v, v.hash.length);
  return timingSafeEqual(out, v.hash);
}

/** Whether `proof` answers `message` for StoredKey `stored` (microseconds: two HMACs and a hash). */
export function verifyProof(stored: Uint8Array, message: Uint8Array, proof: Uint8Array): boolean {
  if (proof.length !== 32 || stored.length !== 32) return false;
  const key = hmac(stored, message);
  for (let i = 0; i < 32; i++) key[i] ^= proof[i];
  return timingSafeEqual(sha256(key), stored);
}

const verifierString = (k: Kdf, stored: Uint8Array): string =>
  `scram$${k.N}$${k.r}$${k.p}$${Buffer.from(k.salt).toString('base64url')}$${Buffer.from(stored).toString('base64url')}`;

/** The auth-file string for a secret: verifies the secret itself and proofs made from it. */
export async function hashSecret(secret: string | Uint8Array, params = SCRYPT_DEFAULTS): Promise<string> {
  const kdf = { ...params, salt: randomBytes(16) };
  const key = await clientKeyOf(typeof secret === 'string' ? Buffer.from(secret) : secret, kdf);
  return verifierString(kdf, sha256(key));
}

/**
 * A device key without a secret: 32 random bytes for the device (it needs only HMAC-SHA256
 * to answer challenges) and the auth-file string that verifies it. The KDF it carries
 * derives nothing (no secret exists); it is there so that the challenge looks like any other.
 */
export function newDeviceKey(params = SCRYPT_DEFAULTS): { secret: string; key: string } {
  const key = randomBytes(32);
  return { secret: verifierString({ ...params, salt: randomBytes(16) }, sha256(key)), key: key.toString('base64url') };
}
