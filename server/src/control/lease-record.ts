// A lease as a store that records beyond this process keeps it (the state file, etcd): which
// client holds the address, and what lets that client take it back when it returns after a
// restart of the server, or to another server. The lease token itself is never recorded,
// only its SHA-256: whoever reads the file or etcd cannot present it.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { LeaseClaim } from './lease-store.js';

export interface LeaseRecord {
  /** The client's auth id, or the name it gave ('' for none). */
  readonly client: string;
  /** `client` is an auth id the client proved. */
  readonly proven: boolean;
  /** SHA-256 of the lease token, base64url; '' when the reply carried none (a seed client). */
  readonly token: string;
  /** When the lease was granted, ms since the epoch. */
  readonly since: number;
}

const sha256 = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

/** The hash of a lease token (given as bytes, or as the base64url text admission keeps). */
export function tokenHash(token: Uint8Array | string): string {
  return sha256(typeof token === 'string' ? Buffer.from(token, 'base64url') : token).toString('base64url');
}

/** The record of a lease granted now for `claim` (none: a client the store knows nothing of). */
export function recordOf(claim: LeaseClaim | undefined, now = Date.now()): LeaseRecord {
  return { client: claim?.client ?? '', proven: claim?.proven ?? false, token: claim?.token ? tokenHash(claim.token) : '', since: now };
}

/**
 * What a client presents to take back an address recorded for someone not connected here,
 * computed when it asks (the claim's bytes are a view of a socket chunk, valid only then).
 */
export interface Presented {
  readonly client: string;
  readonly proven: boolean;
  /** SHA-256 of the token it presented, or null. */
  readonly hash: Buffer | null;
}

export function presentedOf(claim: LeaseClaim | undefined): Presented {
  return { client: claim?.client ?? '', proven: claim?.proven ?? false, hash: claim?.presented ? sha256(claim.presented) : null };
}

/**
 * Whether `p` may take the address `rec` records: it presents that lease's token, and when
 * the record's client had proved an auth id, it proved the same one. With `byCredentials`
 * (the holder is known to be gone: a lease found in the state file at start), the same
 * proved auth id is enough, as admission lets it take over a silent session.
 */
export function mayReclaim(rec: LeaseRecord, p: Presented, byCredentials: boolean): boolean {
  const sameId = p.proven && rec.proven && p.client === rec.client;
  if (rec.proven && !sameId) return false;
  if (byCredentials && sameId) return true;
  if (p.hash === null || !rec.token) return false;
  const want = Buffer.from(rec.token, 'base64url');
  return want.length === p.hash.length && timingSafeEqual(want, p.hash);
}

/** A record read back (from JSON), or why it is not one. */
export function parseRecord(x: unknown): LeaseRecord | string {
  if (typeof x !== 'object' || x === null) return 'not an object';
  const o = x as Record<string, unknown>;
  if (typeof o.client !== 'string') return '"client" is not a string';
  if (typeof o.proven !== 'boolean') return '"proven" is not true or false';
  if (typeof o.token !== 'string' || !/^[A-Za-z0-9_-]*$/.test(o.token)) return '"token" is not a base64url hash';
  if (typeof o.since !== 'number' || !Number.isFinite(o.since)) return '"since" is not a time';
  return { client: o.client, proven: o.proven, token: o.token, since: o.since };
}
