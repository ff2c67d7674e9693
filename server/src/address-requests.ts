// Answers address requests: credentials, the address wanted, taking over a stale session,
// the pool, and the reply or refusal in the dialect the client spoke.

import { randomFillSync, timingSafeEqual } from 'node:crypto';
import { KIND_REPLY, KIND_REQUEST, REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_EXHAUSTED, REFUSE_FULL, REFUSE_IN_USE, REFUSE_NOT_ALLOWED, REFUSE_OUTSIDE, REFUSE_RATE, T_AUTH_ID, T_AUTH_PROOF, T_CLIENT, T_LEASE, T_MTU, configTlvs, eachTlv, extKind, extMessage, readAscii, readU16, refusal, u16, type Tlv, ANY, DST, SRC, formatIPv4, readU32, writeU32, SEED_MTU, MIN_MTU } from '../../protocol/index.js';
import type { AddressPool } from './address-pool.js';
import type { AuthEntry, Authenticator } from './auth.js';
import type { ResolvedConfig } from './config.js';
import type { Fields, Level } from '../../common/log.js';
import type { Metrics } from './metrics.js';
import type { RoutingTable } from './routing-table.js';
import type { Session } from './session.js';

export interface RequestContext {
  readonly cfg: ResolvedConfig;
  readonly pool: AddressPool;
  readonly table: RoutingTable<Session>;
  readonly metrics: Metrics;
  /** Non-null when the server requires credentials. */
  authenticator(): Authenticator | null;
  /** Refused connections still flushing their refusal. */
  linger(s: Session): void;
  event(level: Level, name: string, fields: Fields): void;
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
}

const refusalOf = (code: number, reason: string, text: string): Refusal => ({ code, reason, text });

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

export class AddressRequests {
  /** The reply's TLVs but the MTU and lease: the same for every client, so built once. */
  private readonly configTlvs: Tlv[];

  constructor(private readonly ctx: RequestContext) {
    const c = ctx.cfg;
    this.configTlvs = configTlvs({
      prefix: c.subnet.prefix,
      gateway: c.gateway,
      keepalive: c.keepalive,
      idleTimeout: c.idleTimeoutMs / 1000,
      routes: c.routes.map((r) => [r.network, r.prefix]),
    });
  }

  /** A frame with destination 0.0.0.0 arrived on `s`. */
  handle(s: Session, frame: Uint8Array): void {
    if (s.pending) return; // its credentials are being checked: the answer is on its way
    const ext = extKind(frame) === KIND_REQUEST;
    if (s.address !== ANY) return this.reply(s, frame, ext); // a repeated request: the same answer
    s.extended = ext;
    const req: Request = { frame, ext, wanted: readU32(frame, SRC), lease: null, mtu: 0, id: '', proof: null };
    if (ext) {
      eachTlv(frame, (t, v) => {
        if (t === T_CLIENT) s.name = readAscii(v);
        else if (t === T_LEASE) req.lease = v;
        else if (t === T_MTU && v.length === 2) req.mtu = readU16(v);
        // Bytes as they are: an id with anything outside ASCII matches no entry.
        else if (t === T_AUTH_ID) req.id = Buffer.from(v).toString('latin1');
        else if (t === T_AUTH_PROOF) req.proof = v;
      });
    }
    const auth = this.ctx.authenticator();
    if (auth === null) return this.grant(s, req, null);
    if (!ext) return this.refuse(s, req, refusalOf(REFUSE_AUTH_REQUIRED, 'auth_required', 'this server requires credentials; seed-format requests carry none'));
    if (!req.id || !req.proof) return this.refuse(s, req, refusalOf(REFUSE_AUTH_REQUIRED, 'auth_required', 'this server requires credentials (an id and a secret)'));
    if (auth.pending >= auth.maxPending) return this.refuse(s, req, refusalOf(REFUSE_RATE, 'auth_busy', 'too many credential checks in progress; try again'));
    // The frame is a view of a socket chunk: keep what the reply needs.
    req.frame = frame.slice();
    req.lease = req.lease && req.lease.slice();
    s.pending = true;
    auth.verify(req.id, req.proof).then((entry) => {
      s.pending = false;
      if (s.closed) return;
      if (entry === null) return this.refuse(s, req, refusalOf(REFUSE_AUTH_FAILED, 'auth_failed', `wrong credentials for "${req.id}"`));
      s.authId = entry.id;
      this.grant(s, req, entry);
    });
  }

  /** Closes sessions whose credentials no longer hold (the auth file changed). */
  revoke(ids: Set<string>, sessions: Iterable<Session>): number {
    let n = 0;
    for (const s of [...sessions]) {
      if (s.authId && ids.has(s.authId)) {
        s.end('credentials_revoked', `the auth file no longer allows "${s.authId}" as it is`);
        n++;
      }
    }
    return n;
  }

  private grant(s: Session, req: Request, entry: AuthEntry | null): void {
    let wanted = req.wanted;
    if (entry && entry.address) {
      if (wanted && wanted !== entry.address)
        return this.refuse(s, req, refusalOf(REFUSE_NOT_ALLOWED, 'address_not_allowed', `"${entry.id}" may hold only ${formatIPv4(entry.address)}`));
      wanted = entry.address;
    }
    const refused = this.assign(s, wanted, req.lease, entry);
    if (refused) return this.refuse(s, req, refused);
    if (req.ext) s.lease = newLease();
    // The client's MTU: what it asked for, within the server's; the seed's 1500 if it did not say.
    s.mtu = Math.max(MIN_MTU, Math.min(req.mtu || SEED_MTU, this.ctx.cfg.mtu));
    this.reply(s, req.frame, req.ext);
    this.ctx.event('info', 'assign', {
      id: s.id,
      remote: s.remote,
      address: formatIPv4(s.address),
      mode: req.wanted ? 'static' : entry?.address ? 'fixed' : 'dynamic',
      protocol: req.ext ? 'simplevpn' : 'seed',
      name: s.name || undefined,
      client: s.authId || undefined,
    });
  }

  /**
   * A client whose link died reconnects before the server noticed. If it proves it owns
   * the stale session holding the address, that session is closed now instead of after
   * the idle timeout. Proof: the lease token of that session's reply (from the same
   * credentials, when the server requires them), or the same credentials alone when the
   * holder has been silent for a keepalive interval, so that two devices sharing
   * credentials cannot keep evicting each other and a stolen secret cannot evict a live one.
   */
  private takeOver(s: Session, wanted: number, lease: Uint8Array | null, entry: AuthEntry | null): void {
    const holder = this.ctx.table.lookup(wanted);
    if (holder === undefined || holder === s) return;
    const sameClient = entry === null || holder.authId === entry.id;
    const held = holder.lease === null ? null : Buffer.from(holder.lease, 'base64url');
    const byLease = sameClient && lease !== null && held !== null && lease.length === held.length && timingSafeEqual(lease, held);
    const silent = Date.now() - holder.lastRx >= this.ctx.cfg.keepalive * 1000;
    const byCredentials = entry !== null && sameClient && silent;
    if (!byLease && !byCredentials) return;
    holder.end('replaced', `taken over by connection ${s.id} from ${s.remote}`);
    this.ctx.event('info', 'takeover', { id: s.id, remote: s.remote, address: formatIPv4(wanted), replaced: holder.id, by: byLease ? 'lease' : 'credentials' });
  }

  /** Gives `s` an address: `wanted`, or any when 0. Returns the refusal, if refused. */
  private assign(s: Session, wanted: number, lease: Uint8Array | null, entry: AuthEntry | null): Refusal | null {
    const { cfg, pool, table } = this.ctx;
    const owner = entry !== null && entry.address !== 0 && entry.address === wanted;
    if (wanted !== ANY) {
      if (!pool.assignable(wanted)) return refusalOf(REFUSE_OUTSIDE, 'address_outside_subnet', `address ${formatIPv4(wanted)} is outside the subnet or reserved`);
      if (!owner && pool.isFixed(wanted)) return refusalOf(REFUSE_NOT_ALLOWED, 'address_not_allowed', `address ${formatIPv4(wanted)} is kept for another client`);
      // Only a request that passed its own checks may close a stale session.
      this.takeOver(s, wanted, lease, entry);
    }
    if (table.size >= cfg.maxClients) return refusalOf(REFUSE_FULL, 'max_clients', `server full: ${cfg.maxClients} clients`);
    let addr = wanted;
    if (wanted !== ANY) {
      if (!pool.take(wanted, owner)) return refusalOf(REFUSE_IN_USE, 'address_in_use', `address ${formatIPv4(wanted)} is in use`);
    } else {
      addr = pool.allocate();
      if (addr === 0) return refusalOf(REFUSE_EXHAUSTED, 'pool_exhausted', 'no free address left in the subnet');
    }
    s.address = addr;
    table.bind(addr, s);
    return null;
  }

  /** The reply to a granted request: the seed's echo, or the extension's configuration. */
  private reply(s: Session, request: Uint8Array, ext: boolean): void {
    if (!ext) {
      // The seed echoes the request with the destination set to the address, source 0.
      const msg = Uint8Array.from(request);
      writeU32(msg, SRC, ANY);
      writeU32(msg, DST, s.address);
      return s.writeNow(msg);
    }
    const tlvs: Tlv[] = [...this.configTlvs, [T_MTU, u16(s.mtu)]];
    if (s.lease !== null) tlvs.push([T_LEASE, Buffer.from(s.lease, 'base64url')]);
    s.writeNow(extMessage(ANY, s.address, KIND_REPLY, tlvs));
  }

  private refuse(s: Session, req: Request, r: Refusal): void {
    this.ctx.metrics.refused(r.reason);
    this.ctx.event('warn', 'refuse', {
      id: s.id,
      remote: s.remote,
      requested: req.wanted ? formatIPv4(req.wanted) : 'any',
      reason: r.reason,
      detail: r.text,
      protocol: req.ext ? 'simplevpn' : 'seed',
      client: req.id || undefined,
    });
    // Seed clients are refused the seed's way: the connection closes with no reply.
    if (!req.ext) return s.end('refused', r.reason);
    s.end('refused', r.reason, refusal(req.wanted, r.code, r.text));
    this.ctx.linger(s);
  }
}
