// Client credentials: the auth file, secret hashes, and checking a client's proof.
//
// The file lists clients by id with a scrypt hash of their secret and, optionally, the one
// address they may hold:
//
//   { "clients": [ { "id": "sensor-1", "secret": "scrypt$4096$8$1$<salt>$<hash>", "address": "10.0.0.50" } ] }
//
// A client proves its secret by presenting it (T_AUTH_PROOF) in the extended request, so
// over a plain listener the secret crosses the network in clear: SECURITY.md says when
// that is acceptable. The server keeps only the hash; `simplevpn-server --hash-secret`
// makes one.

import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseIPv4 } from '../../../protocol/index.js';
import { AuthGate, type GateOptions, type Outcome } from './auth-gate.js';

export interface AuthEntry {
  id: string;
  /** The hash string exactly as in the file. */
  secret: string;
  /** The address this client must hold, or 0 when any will do. */
  address: number;
}

interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

export class AuthFileError extends Error {
  override name = 'AuthFileError';
}

/** Parameters for new hashes: about 15 ms and 4 MiB per check on a small server. */
export const SCRYPT_DEFAULTS = { N: 4096, r: 8, p: 1 };
const ID_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const HASH_RE = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

function scryptAsync(secret: Uint8Array, h: Omit<ScryptHash, 'hash'>, len: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, h.salt, len, { N: h.N, r: h.r, p: h.p, maxmem: 256 * h.N * h.r + (1 << 20) }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

function parseHash(s: string): ScryptHash | null {
  const m = HASH_RE.exec(s);
  if (!m) return null;
  const [N, r, p] = [+m[1], +m[2], +m[3]];
  if (N < 2 || (N & (N - 1)) !== 0 || N > 1 << 20 || r < 1 || r > 32 || p < 1 || p > 16) return null;
  const salt = Buffer.from(m[4], 'base64url');
  const hash = Buffer.from(m[5], 'base64url');
  if (salt.length < 8 || hash.length < 16) return null;
  return { N, r, p, salt, hash };
}

/** A hash string for the auth file. */
export async function hashSecret(secret: string | Uint8Array, params = SCRYPT_DEFAULTS): Promise<string> {
  const bytes = typeof secret === 'string' ? Buffer.from(secret) : secret;
  const salt = randomBytes(16);
  const hash = await scryptAsync(bytes, { ...params, salt }, 32);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
}

/**
 * Validates an auth file's text. `checkAddress` says why an address cannot be fixed (not
 * in the subnet, reserved), or null. Every problem names the entry it is in.
 */
export function parseAuthFile(text: string, checkAddress: (addr: number) => string | null): Map<string, AuthEntry> {
  let json: any;
  try {
    json = JSON.parse(text);
  } catch (err: any) {
    throw new AuthFileError(`not valid JSON: ${err.message}`);
  }
  if (!json || typeof json !== 'object' || !Array.isArray(json.clients)) throw new AuthFileError('expected an object with a "clients" array');
  const out = new Map<string, AuthEntry>();
  const owners = new Map<number, string>();
  json.clients.forEach((c: any, i: number) => {
    const where = `clients[${i}]` + (c && typeof c.id === 'string' ? ` (id "${c.id}")` : '');
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new AuthFileError(`${where}: expected an object`);
    for (const k of Object.keys(c)) if (!['id', 'secret', 'address'].includes(k)) throw new AuthFileError(`${where}: unknown field "${k}"`);
    if (typeof c.id !== 'string' || !ID_RE.test(c.id)) throw new AuthFileError(`${where}: "id" must be 1 to 64 characters of letters, digits and . _ @ -`);
    if (out.has(c.id)) throw new AuthFileError(`${where}: id "${c.id}" appears twice`);
    if (typeof c.secret !== 'string' || !parseHash(c.secret))
      throw new AuthFileError(`${where}: "secret" must be a hash made by simplevpn-server --hash-secret (scrypt$N$r$p$salt$hash), never the secret itself`);
    let address = 0;
    if (c.address !== undefined) {
      address = typeof c.address === 'string' ? parseIPv4(c.address) : -1;
      if (address <= 0) throw new AuthFileError(`${where}: "address" must be an IPv4 address, got ${JSON.stringify(c.address)}`);
      const why = checkAddress(address);
      if (why) throw new AuthFileError(`${where}: address ${c.address} ${why}`);
      const other = owners.get(address);
      if (other) throw new AuthFileError(`${where}: address ${c.address} is already fixed for "${other}"`);
      owners.set(address, c.id);
    }
    out.set(c.id, { id: c.id, secret: c.secret, address });
  });
  return out;
}

export async function loadAuthFile(path: string, checkAddress: (addr: number) => string | null): Promise<Map<string, AuthEntry>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err: any) {
    throw new AuthFileError(`cannot read ${path}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  }
  try {
    return parseAuthFile(text, checkAddress);
  } catch (err: any) {
    throw new AuthFileError(`${path}: ${err.message}`);
  }
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** What a check answers: the entry, or why not (wrong, no room to check now, or too many failures for the id). */
export type CheckResult = AuthEntry | Exclude<Outcome, 'ok'>;

/** Checks proofs against the current entries. */
export class Authenticator {
  // A proof that passed scrypt is remembered by its SHA-256, so a client reconnecting with
  // the same secret costs a hash, not another scrypt, and never waits behind unknown
  // proofs. Forgotten when its entry changes.
  private readonly verified = new Map<string, Buffer>();
  private dummy: ScryptHash;
  /** When checks that need scrypt run (auth-gate.ts). */
  private readonly gate: AuthGate;

  constructor(
    public entries: Map<string, AuthEntry>,
    gate: Partial<GateOptions> = {},
  ) {
    this.dummy = this.dummyLike(entries);
    this.gate = new AuthGate(gate);
  }

  /** Checks waiting or running. */
  get pending(): number {
    return this.gate.pending;
  }

  /** Failures of `id` lately, and how long until its next check may run (ms). */
  guesses(id: string): { failures: number; retryInMs: number } {
    return this.gate.guesses(id);
  }

  /** Refuses the checks still waiting (the server is closing). */
  close(): void {
    this.gate.close();
  }

  /** A hash that matches nothing, costing what the file's own hashes cost. */
  private dummyLike(entries: Map<string, AuthEntry>): ScryptHash {
    const first = entries.values().next().value;
    const p = first ? parseHash(first.secret)! : { ...SCRYPT_DEFAULTS, hash: Buffer.alloc(32) };
    return { N: p.N, r: p.r, p: p.p, salt: randomBytes(16), hash: randomBytes(p.hash.length) };
  }

  /**
   * Whether `proof` is the secret of `id`, for a client from `source` (its address, or
   * IPv6 /64: transport/limits.ts limitKey). A proof verified before is answered at once;
   * any other waits for its turn at the gate. Never rejects.
   */
  async check(id: string, proof: Uint8Array, source: string): Promise<CheckResult> {
    const entry = this.entries.get(id);
    const digest = sha256(proof);
    const known = this.verified.get(id);
    if (entry && known && timingSafeEqual(known, digest)) return entry;
    // An unknown id is checked against a dummy hash so that timing does not tell which ids exist.
    const h = entry ? parseHash(entry.secret)! : this.dummy;
    const outcome = await this.gate.submit(source, id, async () => {
      const key = await scryptAsync(proof, h, h.hash.length);
      return timingSafeEqual(key, h.hash) && entry !== undefined && this.entries.get(id) === entry;
    });
    if (outcome !== 'ok') return outcome;
    this.verified.set(id, digest);
    return entry!;
  }

  /** The entry when `proof` is the secret of `id`, or null (whatever the reason). */
  async verify(id: string, proof: Uint8Array): Promise<AuthEntry | null> {
    const r = await this.check(id, proof, 'local');
    return typeof r === 'object' ? r : null;
  }

  /** Installs new entries; returns the ids whose entry went away or changed. */
  replace(next: Map<string, AuthEntry>): Set<string> {
    const changed = new Set<string>();
    for (const [id, e] of this.entries) {
      const n = next.get(id);
      if (!n || n.secret !== e.secret || n.address !== e.address) changed.add(id);
    }
    for (const id of changed) this.verified.delete(id);
    // Unchanged entries keep their identity, so a check running across the reload holds.
    for (const [id, e] of this.entries) if (!changed.has(id)) next.set(id, e);
    this.entries = next;
    this.dummy = this.dummyLike(next);
    return changed;
  }
}
