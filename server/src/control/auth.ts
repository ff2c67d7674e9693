// Client credentials: the auth file, and checking a client's proof.
//
// The file lists clients by id with a verifier of their secret (auth-scram.ts) and,
// optionally, the one address they may hold:
//
//   { "clients": [ { "id": "sensor-1", "secret": "scram$4096$8$1$<salt>$<StoredKey>", "address": "10.0.0.50" } ] }
//
// A client proves who it is by answering a challenge (KIND_CHALLENGE, an HMAC over a fresh
// nonce: nothing worth capturing crosses the network), by presenting the secret itself
// (bearer, T_AUTH_PROOF in the request, where --auth-bearer allows it), or by a client
// certificate naming its id (admission.ts). The server keeps only StoredKey, which
// cannot log in; `simplevpn-server --hash-secret` and `--new-device-key` make entries.
// Entries of the older form scrypt$...$<hash> verify bearer secrets only.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { type Kdf, parseIPv4 } from '../../../protocol/index.js';
import { AuthGate, type GateOptions, type Outcome } from './auth-gate.js';
import { SCRYPT_DEFAULTS, type Verifier, hmac, parseVerifier, verifyProof, verifySecret } from './auth-scram.js';

export { SCRYPT_DEFAULTS, hashSecret, newDeviceKey } from './auth-scram.js';

export interface AuthEntry {
  id: string;
  /** The verifier string exactly as in the file. */
  secret: string;
  /** The address this client must hold, or 0 when any will do. */
  address: number;
}

export class AuthFileError extends Error {
  override name = 'AuthFileError';
}

const ID_RE = /^[A-Za-z0-9._@-]{1,64}$/;

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
    if (typeof c.secret !== 'string' || !parseVerifier(c.secret))
      throw new AuthFileError(`${where}: "secret" must be a hash made by simplevpn-server --hash-secret or --new-device-key (scram$N$r$p$salt$key, or an older scrypt$N$r$p$salt$hash), never the secret itself`);
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
  // A bearer proof that passed scrypt is remembered by its SHA-256, so a client reconnecting
  // with the same secret costs a hash, not another scrypt, and never waits behind unknown
  // proofs. Forgotten when its entry changes.
  private readonly verified = new Map<string, Buffer>();
  // Ids whose challenge proof held since their entry was loaded: their next good proof is
  // taken at once, as a bearer proof verified before is (a first one waits at the gate, so
  // that guessing a secret online stays under the per-id backoff).
  private readonly proven = new Set<string>();
  private readonly verifiers = new WeakMap<AuthEntry, Verifier>();
  private dummy: Verifier;
  /** Makes the KDF and StoredKey of ids not in the file, the same on every challenge. */
  private readonly dummyKey = randomBytes(32);
  /** When checks that need scrypt run (auth-gate.ts). */
  private readonly gate: AuthGate;
  /** Told when a challenge proof for an entry with an older scrypt$ hash, which cannot answer one, fails. */
  onLegacy: ((id: string) => void) | null = null;

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

  private verifier(e: AuthEntry): Verifier {
    let v = this.verifiers.get(e);
    if (v === undefined) this.verifiers.set(e, (v = parseVerifier(e.secret)!));
    return v;
  }

  /** A verifier that matches nothing, costing what the file's own cost. */
  private dummyLike(entries: Map<string, AuthEntry>): Verifier {
    const first = entries.values().next().value;
    const p = first ? this.verifier(first) : { ...SCRYPT_DEFAULTS, kind: 'scram' as const, hash: Buffer.alloc(32) };
    return { kind: p.kind, N: p.N, r: p.r, p: p.p, salt: randomBytes(16), hash: randomBytes(p.hash.length) };
  }

  /** Unknown ids get a salt and StoredKey of their own, stable while the server runs, so a challenge does not tell which ids exist. */
  private unknown(id: string): Verifier {
    const d = this.dummy;
    return { kind: 'scram', N: d.N, r: d.r, p: d.p, salt: hmac(this.dummyKey, Buffer.from('salt ' + id)).subarray(0, 16), hash: hmac(this.dummyKey, Buffer.from('key ' + id)) };
  }

  /** The KDF a challenge to `id` carries: its entry's, or a made-up one just as stable. */
  kdf(id: string): Kdf {
    const e = this.entries.get(id);
    return e ? this.verifier(e) : this.unknown(id);
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
    // An unknown id is checked against a dummy verifier so that timing does not tell which ids exist.
    const v = entry ? this.verifier(entry) : this.dummy;
    const outcome = await this.gate.submit(source, id, async () => (await verifySecret(v, proof)) && entry !== undefined && this.entries.get(id) === entry);
    if (outcome !== 'ok') return outcome;
    this.verified.set(id, digest);
    return entry!;
  }

  /**
   * Whether `proof` answers a challenge whose authMessage (protocol/control.ts) is
   * `message`, for `id`. Cheap to compute, but a wrong proof is a guess like any other: it
   * takes its turn at the gate and counts towards the id's backoff. Never rejects.
   */
  async respond(id: string, message: Uint8Array, proof: Uint8Array, source: string): Promise<CheckResult> {
    const entry = this.entries.get(id);
    const v = entry ? this.verifier(entry) : this.unknown(id);
    const good = entry !== undefined && v.kind === 'scram' && verifyProof(v.hash, message, proof);
    if (good && this.proven.has(id)) return entry;
    if (!good && entry && v.kind === 'scrypt') this.onLegacy?.(id);
    const outcome = await this.gate.submit(source, id, async () => good && this.entries.get(id) === entry);
    if (outcome !== 'ok') return outcome;
    this.proven.add(id);
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
    for (const id of changed) {
      this.verified.delete(id);
      this.proven.delete(id);
    }
    // Unchanged entries keep their identity, so a check running across the reload holds.
    for (const [id, e] of this.entries) if (!changed.has(id)) next.set(id, e);
    this.entries = next;
    this.dummy = this.dummyLike(next);
    return changed;
  }
}
