// Admission: everything between a connection arriving and its address being switched, and
// back. Address requests, credentials, the address wanted, taking over a stale session,
// leasing and binding the address, the reply or refusal in the dialect the client spoke,
// and, when the connection ends, unbinding and releasing the address. The state this
// needs per connection is declared and written here only (Connection, the control side's
// subclass of the data side's Session); the rest of the server reads it through Client.

import { randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { KIND_RESPONSE, REFUSE_BEARER, REFUSE_IDENTITY, authMessage, challengeMessage, KIND_REPLY, KIND_REQUEST, REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_EXHAUSTED, REFUSE_FULL, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, REFUSE_OUTSIDE, REFUSE_RATE, REFUSE_STORE_UNAVAILABLE, T_AUTH_ID, T_AUTH_PROOF, T_CLIENT, T_LEASE, T_MTU, T_OFFLOAD, OFFLOAD_SUPER, MAX_FRAME, u8, configTlvs, eachTlv, extKind, extMessage, readAscii, readU16, refusal, u16, type Tlv, ANY, DST, SRC, formatIPv4, readU32, writeU32, SEED_MTU, MIN_MTU, T_IPV6, MIN_MTU6, REFUSE_IN_USE6, REFUSE_OUTSIDE6, formatIPv6, inPrefix6, ipv6Tlvs, sameAddress6, SRC6 } from '../../../protocol/index.js';
import { type Fields, type Level, LogThrottle } from '../../../common/log.js';
import type { ResolvedConfig } from '../config/config.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TransportKind } from '../transport/transport.js';
import { sourceKey } from '../transport/limits.js';
import { type EndCode, FLAG_FREE, Session, type SessionEnv } from '../data/session.js';
import { fromWall, wallTime } from '../data/clock.js';
import type { AuthEntry, Authenticator, CheckResult } from './auth.js';
import type { Allocation, LeaseClaim, LeaseRefusal, LeaseStore } from './lease-store.js';

/** What admission needs from the server around it. */
export interface AdmissionContext {
  readonly cfg: ResolvedConfig;
  readonly leases: LeaseStore;
  /** The data side: sessions are created on it, addresses bound in its switch. */
  readonly env: SessionEnv;
  readonly metrics: Metrics;
  /** Non-null when the server requires credentials. */
  authenticator(): Authenticator | null;
  /** A refused connection still flushing its refusal. */
  linger(socket: Socket): void;
  /** 'quiet': emitted, not logged (a line held back by a throttle). */
  event(level: Level | 'quiet', name: string, fields: Fields): void;
  /** A connection closed; its address, if it held one, is released already. */
  ended(c: Client, code: EndCode, detail: string): void;
}

/** One connection as the control side knows it. Read-only: admission writes it. */
export interface Client {
  readonly id: number;
  readonly remote: string;
  readonly transport: TransportKind;
  /** When it connected (ms). */
  readonly since: number;
  /** Its data side (the same object: one per connection). */
  readonly session: Session;
  /** The connection is closed (or closing). */
  readonly closed: boolean;
  /** Spoke the extension (true) or the seed protocol (false). */
  readonly extended: boolean;
  /** The name the client gave, if any. */
  readonly name: string;
  /** The auth file id it proved, when the server requires credentials. */
  readonly authId: string;
  /** Its request is being worked on (credentials checked, lease recorded): the answer is on its way. */
  readonly pending: boolean;
  /** The auth id its TLS client certificate names (subject CN), when certificates name ids; null otherwise. */
  readonly certId: string | null;
}

interface Refusal {
  code: number;
  reason: string;
  text: string;
}

/** What a request carries beyond the header. */
interface Request {
  frame: Uint8Array;
  ext: boolean;
  wanted: number;
  lease: Uint8Array | null;
  /** The MTU the client asked for; 0 when it did not say. */
  mtu: number;
  id: string;
  proof: Uint8Array | null;
  /** T_IPV6: empty for any IPv6 address, 16 bytes for the one wanted; null when not asked. */
  v6: Uint8Array | null;
  /** frame, lease and v6 are copies of their own (the request waits for something). */
  kept: boolean;
}

const refusalOf = (code: number, reason: string, text: string): Refusal => ({ code, reason, text });

function leaseRefusal(r: LeaseRefusal, wanted: number, why?: string): Refusal {
  if (r === 'in_use') return refusalOf(REFUSE_IN_USE, 'address_in_use', `address ${formatIPv4(wanted)} is in use`);
  if (r === 'exhausted') return refusalOf(REFUSE_EXHAUSTED, 'pool_exhausted', 'no free address left in the subnet');
  return refusalOf(REFUSE_STORE_UNAVAILABLE, 'lease_unavailable', `the address could not be recorded (${why ?? 'the lease store did not answer'}); try again`);
}

// Lease tokens: 16 random bytes each, drawn from a pool filled 4 KiB at a time, kept as
// base64url text (a 22-character string costs a session less than a Buffer does).
const LEASE_BYTES = 16;
const leasePool = Buffer.alloc(4096);
let leaseAt = leasePool.length;
function newLease(): string {
  if (leaseAt + LEASE_BYTES > leasePool.length) {
    randomFillSync(leasePool);
    leaseAt = 0;
  }
  leaseAt += LEASE_BYTES;
  return leasePool.toString('base64url', leaseAt - LEASE_BYTES, leaseAt);
}

const SPOOF_LOG_INTERVAL_MS = 10_000;

// Connection's bits beside the session's.
const EXTENDED = FLAG_FREE;
const PENDING = FLAG_FREE << 1;

interface AdmissionEnv extends SessionEnv {
  readonly admission: Admission;
}

/**
 * One connection: its data side (Session) and what admission knows of it. The control
 * state is declared here and written only in this module; the rest of the server reads it
 * through the Client interface.
 */
class Connection extends Session<AdmissionEnv> implements Client {
  name = '';
  authId = '';
  /** The token of its last reply (base64url): presenting it takes this session's address over. */
  lease: string | null = null;
  /** The challenge sent and not yet answered: the request it answers, and its nonce. */
  challenge: { req: Request; nonce: Buffer } | null = null;
  /** When it connected, in clock.ts's ms (a small integer: no heap number per connection). */
  private readonly sinceAt: number;

  constructor(
    socket: Socket,
    env: AdmissionEnv,
    readonly id: number,
    readonly remote: string,
    readonly transport: TransportKind,
    readonly certId: string | null,
    since: number,
  ) {
    super(socket, env);
    this.sinceAt = fromWall(since);
  }

  get since(): number {
    return wallTime(this.sinceAt);
  }

  get extended(): boolean {
    return (this.bits & EXTENDED) !== 0;
  }

  set extended(on: boolean) {
    this.bits = on ? this.bits | EXTENDED : this.bits & ~EXTENDED;
  }

  get pending(): boolean {
    return (this.bits & PENDING) !== 0;
  }

  set pending(on: boolean) {
    this.bits = on ? this.bits | PENDING : this.bits & ~PENDING;
  }

  get session(): Session {
    return this;
  }

  protected request(frame: Uint8Array): void {
    this.env.admission.handle(this, frame);
  }

  protected spoofed(p: Uint8Array, o: number): void {
    const now = Date.now();
    const spoofs = this.env.admission.spoofs;
    let log = spoofs.get(this);
    if (log === undefined) spoofs.set(this, (log = { at: 0, unlogged: 0 }));
    if (now - log.at < SPOOF_LOG_INTERVAL_MS) {
      log.unlogged++;
      return;
    }
    // One rate limit for both families: a flood of either costs one line per interval.
    const v6 = p[o] >> 4 === 6;
    this.env.admission.ctx.event('warn', 'drop_spoofed', {
      id: this.id,
      remote: this.remote,
      address: v6 ? formatIPv6(this.address6!) : formatIPv4(this.address),
      source: v6 ? formatIPv6(p, o + SRC6) : formatIPv4(readU32(p, o + SRC)),
      more_since_last: log.unlogged,
    });
    log.at = now;
    log.unlogged = 0;
  }

  protected ended(code: EndCode, detail: string): void {
    this.env.admission.release(this, code, detail);
  }
}

export class Admission {
  /** The reply's TLVs but the MTU and lease: the same for every client, so built once. */
  private readonly configTlvs: Tlv[];
  /**
   * Whole replies by MTU, with the lease TLV last and its bytes zero: most replies (no IPv6,
   * no super-packets) are a copy of one with the address and the lease written in, one
   * allocation instead of a TLV list, its arrays and the message.
   */
  private readonly replies = new Map<number, Uint8Array>();
  /** Leases the store is still recording: they count against max clients. */
  private allocating = 0;
  /** What every session of this server shares. */
  private readonly env: AdmissionEnv;
  /**
   * Rate limit of each spoofing connection's log line: when it was last written, and how many
   * since. Kept here, not on every connection: few ever spoof.
   */
  readonly spoofs = new WeakMap<Connection, { at: number; unlogged: number }>();
  /** Lines about credentials refused or guessed: bursts of 20, then 2 a second, per reason. */
  private readonly authLog = new LogThrottle(2, 20);

  constructor(readonly ctx: AdmissionContext) {
    const c = ctx.cfg;
    this.env = { ...ctx.env, admission: this };
    this.configTlvs = configTlvs({
      prefix: c.subnet.prefix,
      gateway: c.gateway,
      keepalive: c.keepalive,
      idleTimeout: c.idleTimeoutMs / 1000,
      routes: c.routes.map((r) => [r.network, r.prefix]),
    });
  }

  /** A connection ready for the protocol (its TCP connection arrived at `since`): its session starts reading now. */
  connect(socket: Socket, id: number, remote: string, transport: TransportKind, certId: string | null = null, since = Date.now()): Client {
    return new Connection(socket, this.env, id, remote, transport, certId, since);
  }

  /** The connection holding `address` on this server. */
  holder(address: number): Client | undefined {
    const port = this.ctx.env.sw.lookup(address);
    return port instanceof Connection ? port : undefined;
  }

  /** Closes sessions whose credentials no longer hold (the auth file changed). */
  revoke(ids: Set<string>, clients: Iterable<Client>): number {
    let n = 0;
    for (const c of [...clients]) {
      if (c.authId && ids.has(c.authId)) {
        c.session.end('credentials_revoked', `the auth file no longer allows "${c.authId}" as it is`);
        n++;
      }
    }
    return n;
  }

  /** A frame with destination 0.0.0.0 arrived from `c`. */
  handle(c: Connection, frame: Uint8Array): void {
    if (c.pending) return; // the answer is on its way
    const kind = extKind(frame);
    if (kind === KIND_RESPONSE) return this.response(c, frame);
    const ext = kind === KIND_REQUEST;
    if (c.address !== ANY) {
      // A repeated request: the same answer.
      this.ctx.leases.renew(c.address, c.id);
      return this.reply(c, frame, ext);
    }
    c.extended = ext;
    c.challenge = null;
    const req: Request = { frame, ext, wanted: readU32(frame, SRC), lease: null, mtu: 0, id: '', proof: null, v6: null, kept: false };
    if (ext) {
      eachTlv(frame, (t, v) => {
        if (t === T_CLIENT) c.name = readAscii(v);
        else if (t === T_LEASE) req.lease = v;
        else if (t === T_MTU && v.length === 2) req.mtu = readU16(v);
        // Bytes as they are: an id with anything outside ASCII matches no entry.
        else if (t === T_AUTH_ID) req.id = Buffer.from(v).toString('latin1');
        else if (t === T_AUTH_PROOF) req.proof = v;
        // Super-packets are up to 65535 bytes: only where frames that long are allowed.
        else if (t === T_OFFLOAD && v.length === 1) c.superPackets = (v[0] & OFFLOAD_SUPER) !== 0 && this.ctx.cfg.maxFrame === MAX_FRAME;
        else if (t === T_IPV6 && (v.length === 0 || v.length === 16)) req.v6 = v;
      });
    }
    const auth = this.ctx.authenticator();
    if (auth === null) return this.grant(c, req, null);
    if (c.certId !== null) return this.byCertificate(c, req, auth);
    if (!ext) return this.refuse(c, req, refusalOf(REFUSE_AUTH_REQUIRED, 'auth_required', 'this server requires credentials; seed-format requests carry none'));
    if (!req.id) return this.refuse(c, req, refusalOf(REFUSE_AUTH_REQUIRED, 'auth_required', 'this server requires credentials (an id and a secret or key)'));
    keep(req);
    if (req.proof === null) {
      // An id without a proof asks for a challenge.
      const nonce = randomBytes(32);
      c.challenge = { req, nonce };
      return c.writeNow(challengeMessage(req.wanted, nonce, auth.kdf(req.id)));
    }
    const bearer = this.ctx.cfg.authBearer;
    if (bearer === 'off' || (bearer === 'tls' && (c.transport === 'tcp' || c.transport === 'ws')))
      return this.refuse(
        c,
        req,
        refusalOf(REFUSE_BEARER, 'bearer_refused', `this server does not take the secret itself${bearer === 'tls' ? ' over an unencrypted connection' : ''}: answer its challenge (send the id without a proof)`),
      );
    this.checked(c, req, auth, auth.check(req.id, req.proof, sourceKey(c.remote)));
  }

  /** The answer to this connection's challenge. */
  private response(c: Connection, frame: Uint8Array): void {
    const ch = c.challenge;
    const auth = this.ctx.authenticator();
    if (ch === null || auth === null || c.address !== ANY) return; // nothing asked: ignored, as any stray control message
    c.challenge = null; // one answer per nonce
    let proof: Uint8Array = new Uint8Array(0);
    eachTlv(frame, (t, v) => {
      if (t === T_AUTH_PROOF) proof = v;
    });
    const { req } = ch;
    this.checked(c, req, auth, auth.respond(req.id, authMessage(req.id, ch.nonce, req.wanted), proof, sourceKey(c.remote)));
  }

  /**
   * Under mutual TLS with certificates naming ids: the certificate is the credential. It must
   * name an id in the auth file, and a request that names an id must name that one.
   */
  private byCertificate(c: Connection, req: Request, auth: Authenticator): void {
    const cn = c.certId!;
    const entry = auth.entries.get(cn);
    if (entry === undefined)
      return this.refuse(c, req, refusalOf(REFUSE_IDENTITY, 'certificate_unknown_id', cn ? `the client certificate names "${cn}", which is not an id in the auth file` : 'the client certificate names no id (its subject has no single CN)'));
    if (req.id && req.id !== cn) return this.refuse(c, req, refusalOf(REFUSE_IDENTITY, 'certificate_id_mismatch', `the client certificate is for "${cn}", not for "${req.id}"`));
    c.authId = cn;
    this.grant(c, req, entry);
  }

  /** A credential check under way: the grant, or the refusal that says why not. */
  private checked(c: Connection, req: Request, auth: Authenticator, check: Promise<CheckResult>): void {
    c.pending = true;
    check.then((r) => {
      c.pending = false;
      if (c.closed) return;
      if (typeof r === 'object') {
        c.authId = r.id;
        return this.grant(c, req, r);
      }
      const { failures, retryInMs } = auth.guesses(req.id);
      const retry = Math.max(1, Math.ceil(retryInMs / 1000));
      if (r === 'failed' && retryInMs > 0) this.guessing(c, req.id, failures, retry);
      this.refuse(
        c,
        req,
        r === 'failed' ? refusalOf(REFUSE_AUTH_FAILED, 'auth_failed', `wrong credentials for "${req.id}"`)
        : r === 'busy' ? refusalOf(REFUSE_RATE, 'auth_busy', 'too many credential checks waiting; try again')
        : refusalOf(REFUSE_RATE, 'auth_throttled', `too many failed attempts for "${req.id}"; try again in ${retry} s`),
      );
    });
  }

  /** Failures of `id` put it into backoff: a warning, a few a second at most. */
  private guessing(c: Connection, id: string, failures: number, retryInS: number): void {
    const held = this.authLog.pass('auth_backoff', Date.now());
    this.ctx.event(held < 0 ? 'quiet' : 'warn', 'auth_backoff', { id: c.id, remote: c.remote, client: id, failures, retry_in_s: retryInS, more_since_last: held > 0 ? held : undefined });
  }

  /** `c` ended: its address goes back to the switch and the lease store. */
  release(c: Connection, code: EndCode, detail: string): void {
    const a = c.address;
    const a6 = c.address6;
    if (a6 !== null) this.ctx.env.sw.unbind6(a6, c);
    if (a !== ANY) {
      this.ctx.env.sw.unbind(a, c);
      this.ctx.leases.release(a, c.id);
    }
    this.ctx.ended(c, code, detail);
  }

  private grant(c: Connection, req: Request, entry: AuthEntry | null): void {
    const { cfg, leases, env } = this.ctx;
    let wanted = req.wanted;
    if (entry && entry.address) {
      if (wanted && wanted !== entry.address)
        return this.refuse(c, req, refusalOf(REFUSE_NOT_ALLOWED, 'address_not_allowed', `"${entry.id}" may hold only ${formatIPv4(entry.address)}`));
      wanted = entry.address;
    }
    const owner = entry !== null && entry.address !== 0 && entry.address === wanted;
    if (wanted !== ANY) {
      if (!leases.assignable(wanted)) return this.refuse(c, req, refusalOf(REFUSE_OUTSIDE, 'address_outside_subnet', `address ${formatIPv4(wanted)} is outside the subnet or reserved`));
      if (!owner && leases.isFixed(wanted)) return this.refuse(c, req, refusalOf(REFUSE_NOT_ALLOWED, 'address_not_allowed', `address ${formatIPv4(wanted)} is kept for another client`));
      // Only a request that passed its own checks may close a stale session.
      this.takeOver(c, wanted, req.lease, entry);
    }
    if (env.sw.size + this.allocating >= cfg.maxClients) return this.refuse(c, req, refusalOf(REFUSE_FULL, 'max_clients', `server full: ${cfg.maxClients} clients`));
    const refused6 = this.check6(c, req.v6, wanted);
    if (refused6 !== null) return this.refuse(c, req, refused6);
    // The token is made before the lease, so that a store that records leases records it (hashed).
    const token = req.ext ? newLease() : null;
    const claim: LeaseClaim = { token, client: entry?.id ?? c.name, proven: entry !== null, presented: req.lease };
    const got = leases.allocate(wanted, owner, c.id, claim);
    if (typeof got !== 'object') return this.leased(c, req, entry, wanted, got, token);
    // The store records elsewhere: the client waits, and so do its further requests.
    keep(req);
    c.pending = true;
    this.allocating++;
    const done = (a: Allocation) => {
      this.allocating--;
      c.pending = false;
      if (c.closed) {
        if (typeof a === 'number') leases.release(a, c.id);
        return;
      }
      this.leased(c, req, entry, wanted, a, token);
    };
    got.then(done, () => done('unavailable'));
  }

  /** The lease store answered: the address is bound and the client told, or it is refused. */
  private leased(c: Connection, req: Request, entry: AuthEntry | null, wanted: number, got: Allocation, token: string | null): void {
    if (typeof got !== 'number') return this.refuse(c, req, leaseRefusal(got, wanted, this.ctx.leases.unavailableDetail?.()));
    // The client's MTU: what it asked for, within the server's; the seed's 1500 if it did not say.
    c.open(got, Math.max(MIN_MTU, Math.min(req.mtu || SEED_MTU, this.ctx.cfg.mtu)), req.ext);
    this.ctx.env.sw.bind(got, c);
    // IPv6 too when asked for and the link can carry it (an MTU of 1280 at least).
    const s6 = this.ctx.cfg.subnet6;
    if (req.v6 !== null && s6 !== null && c.mtu >= MIN_MTU6) {
      const a6 = req.v6.length === 16 ? copy(req.v6) : s6.network.slice();
      if (req.v6.length === 0) writeU32(a6, 12, got);
      // Taken meanwhile (while a lease was being recorded): the session ends and releases the IPv4 address.
      if (!this.ctx.env.sw.bind6(a6, c)) return this.refuse(c, req, refusalOf(REFUSE_IN_USE6, 'address6_in_use', `IPv6 address ${formatIPv6(a6)} is in use`));
      c.open6(a6);
    }
    c.lease = token;
    this.reply(c, req.frame, req.ext);
    this.ctx.event('info', 'assign', {
      id: c.id,
      remote: c.remote,
      address: formatIPv4(got),
      address6: c.address6 ? formatIPv6(c.address6) : undefined,
      mode: req.wanted ? 'static' : entry?.address ? 'fixed' : 'dynamic',
      protocol: req.ext ? 'simplevpn' : 'seed',
      name: c.name || undefined,
      client: c.authId || undefined,
    });
  }

  /**
   * Whether the IPv6 address asked for (`v6`, with IPv4 `wanted`, 0 for any) can be granted:
   * null, or the refusal. Any address (v6 empty) always can; without --subnet6 it is simply
   * not granted. A wanted one must lie in the /64, not be the subnet-router anycast address
   * (interface id 0) or the server's, nor the address of another IPv4 address
   * (PREFIX::a.b.c.d is kept for the client holding a.b.c.d), nor held.
   */
  private check6(c: Connection, v6: Uint8Array | null, wanted: number): Refusal | null {
    if (v6 === null || v6.length === 0) return null;
    const s6 = this.ctx.cfg.subnet6;
    const text = formatIPv6(v6);
    const outside = (why: string) => refusalOf(REFUSE_OUTSIDE6, 'address6_outside_subnet', `IPv6 address ${text} ${why}`);
    if (s6 === null) return outside('cannot be granted: this server has no IPv6 subnet (--subnet6)');
    if (!inPrefix6(v6, 0, s6.network, s6.prefix)) return outside(`is outside the subnet ${formatIPv6(s6.network)}/${s6.prefix}`);
    const hi = readU32(v6, 8);
    const lo = readU32(v6, 12);
    if ((hi | lo) === 0 || sameAddress6(v6, 0, s6.gateway, 0)) return outside('is reserved (the subnet-router anycast address or the server\'s own)');
    if (hi === 0 && lo !== wanted) return outside(`is kept for the client holding ${formatIPv4(lo)}: ask for any IPv6 address to get PREFIX + your IPv4 address, or for one whose bits 64-95 are not all 0`);
    if (!this.ctx.env.sw.canBind6(v6, c)) return refusalOf(REFUSE_IN_USE6, 'address6_in_use', `IPv6 address ${text} is in use`);
    return null;
  }

  /**
   * A client whose link died reconnects before the server noticed. If it proves it owns
   * the stale session holding the address, that session is closed now instead of after
   * the idle timeout. Proof: the lease token of that session's reply (from the same
   * credentials, when the server requires them), or the same credentials alone when the
   * holder has been silent for a keepalive interval, so that two devices sharing
   * credentials cannot keep evicting each other and a stolen secret cannot evict a live one.
   */
  private takeOver(c: Connection, wanted: number, lease: Uint8Array | null, entry: AuthEntry | null): void {
    const holder = this.ctx.env.sw.lookup(wanted);
    if (!(holder instanceof Connection) || holder === c) return;
    const sameClient = entry === null || holder.authId === entry.id;
    const held = holder.lease === null ? null : Buffer.from(holder.lease, 'base64url');
    const byLease = sameClient && lease !== null && held !== null && lease.length === held.length && timingSafeEqual(lease, held);
    const silent = Date.now() - holder.lastRx >= this.ctx.cfg.keepalive * 1000;
    const byCredentials = entry !== null && sameClient && silent;
    if (!byLease && !byCredentials) return;
    holder.end('replaced', `taken over by connection ${c.id} from ${c.remote}`);
    this.ctx.event('info', 'takeover', { id: c.id, remote: c.remote, address: formatIPv4(wanted), replaced: holder.id, by: byLease ? 'lease' : 'credentials' });
  }

  /** The reply to a granted request: the seed's echo, or the extension's configuration. */
  private reply(c: Connection, request: Uint8Array, ext: boolean): void {
    if (!ext) {
      // The seed echoes the request with the destination set to the address, source 0.
      const msg = Uint8Array.from(request);
      writeU32(msg, SRC, ANY);
      writeU32(msg, DST, c.address);
      return c.writeNow(msg);
    }
    const a6 = c.address6;
    if (a6 === null && c.lease !== null && !c.superPackets) return c.writeNow(this.leaseReply(c.address, c.mtu, c.lease));
    const tlvs: Tlv[] = [...this.configTlvs, [T_MTU, u16(c.mtu)]];
    const s6 = this.ctx.cfg.subnet6;
    if (a6 !== null && s6 !== null) tlvs.push(...ipv6Tlvs({ address: a6, prefix: s6.prefix, gateway: s6.gateway, routes: s6.routes }));
    if (c.lease !== null) tlvs.push([T_LEASE, Buffer.from(c.lease, 'base64url')]);
    if (c.superPackets) tlvs.push([T_OFFLOAD, u8(OFFLOAD_SUPER)]);
    c.writeNow(extMessage(ANY, c.address, KIND_REPLY, tlvs));
  }

  /** The extension's reply to `address` with `mtu` and the lease token `lease` (base64url), from the template for its MTU. */
  private leaseReply(address: number, mtu: number, lease: string): Uint8Array {
    let t = this.replies.get(mtu);
    if (t === undefined) this.replies.set(mtu, (t = extMessage(ANY, ANY, KIND_REPLY, [...this.configTlvs, [T_MTU, u16(mtu)], [T_LEASE, new Uint8Array(LEASE_BYTES)]])));
    const msg = Buffer.allocUnsafe(t.length);
    msg.set(t);
    writeU32(msg, DST, address);
    msg.write(lease, t.length - LEASE_BYTES, LEASE_BYTES, 'base64url');
    return msg;
  }

  private refuse(c: Connection, req: Request, r: Refusal): void {
    this.ctx.metrics.refused(r.reason);
    // Refusals of credentials come in floods when someone guesses: a few lines a second, the
    // next saying how many were held back (every one is counted and emitted).
    const held = r.code === REFUSE_RATE || r.code === REFUSE_STORE_UNAVAILABLE || r.code === REFUSE_AUTH_FAILED ? this.authLog.pass(r.reason, Date.now()) : 0;
    this.ctx.event(held < 0 ? 'quiet' : 'warn', 'refuse', {
      id: c.id,
      remote: c.remote,
      requested: req.wanted ? formatIPv4(req.wanted) : 'any',
      reason: r.reason,
      detail: r.text,
      protocol: req.ext ? 'simplevpn' : 'seed',
      client: req.id || undefined,
      more_since_last: held > 0 ? held : undefined,
    });
    // Seed clients are refused the seed's way: the connection closes with no reply.
    if (!req.ext) return c.end('refused', r.reason);
    c.end('refused', r.reason, refusal(req.wanted, r.code, r.text));
    this.ctx.linger(c.socket);
  }
}

const copy = (b: Uint8Array): Uint8Array => Uint8Array.prototype.slice.call(b); // Buffer#slice would not copy

/** The request's frame is a view of a socket chunk: keep what the answer needs past it. */
function keep(req: Request): void {
  if (req.kept) return;
  req.kept = true;
  req.frame = copy(req.frame);
  req.lease = req.lease && copy(req.lease);
  req.v6 = req.v6 && copy(req.v6);
}
