// Admission limits per source address: connections held at once, and new connections per
// second (a token bucket). Checked when a connection arrives, before any byte is read, so
// a flood from one address costs an accept and a close.

interface Source {
  conns: number;
  tokens: number;
  last: number; // ms, when tokens was last topped up
}

export type AdmitRefusal = 'per_source_limit' | 'connection_rate';

/** The source a held socket counts under, kept on the socket itself (the entry, not its key: no string per socket). */
const HELD = Symbol('source');

type Held = { [HELD]?: Source };

/**
 * The 'close' listener of every held socket (a closure per socket would cost about 200 bytes
 * of heap each): the connection no longer counts under its source.
 */
function released(this: Held): void {
  const s = this[HELD];
  if (s === undefined) return;
  this[HELD] = undefined;
  if (s.conns > 0) s.conns--;
}

/**
 * For whoever listens for `sock`'s 'close' anyway (a session): it takes over the release,
 * calling releaseSource(sock) from its own listener, and the socket keeps one 'close'
 * listener instead of two (Node holds two in an array of their own, 64 bytes).
 */
export function takeOverRelease(sock: { removeListener(event: 'close', f: () => void): unknown }): void {
  if ((sock as Held)[HELD] !== undefined) sock.removeListener('close', released);
}

/** `sock` closed: what takeOverRelease() took over. */
export function releaseSource(sock: object): void {
  released.call(sock as Held);
}

export class SourceLimits {
  private readonly sources = new Map<string, Source>();

  /**
   * `maxPerSource` connections at once (0: no limit); `rate` new connections per second
   * with bursts of `burst` (rate 0: no limit).
   */
  constructor(
    readonly maxPerSource: number,
    readonly rate: number,
    readonly burst: number,
  ) {}

  /** `sock`, admitted under `key`, counts there until it closes. */
  hold(sock: { on(event: 'close', f: () => void): unknown }, key: string): void {
    // The entry admit() counted it in: a source holding connections is never swept.
    const s = this.sources.get(key);
    if (s === undefined) return;
    (sock as Held)[HELD] = s;
    sock.on('close', released);
  }

  /** Counts a new connection from `ip`, or says why it is refused. */
  admit(ip: string, now: number): AdmitRefusal | null {
    let s = this.sources.get(ip);
    if (s === undefined) {
      s = { conns: 0, tokens: this.burst, last: now };
      this.sources.set(ip, s);
    } else if (this.rate > 0) {
      s.tokens = Math.min(this.burst, s.tokens + ((now - s.last) * this.rate) / 1000);
      s.last = now;
    }
    if (this.maxPerSource > 0 && s.conns >= this.maxPerSource) return 'per_source_limit';
    if (this.rate > 0) {
      if (s.tokens < 1) return 'connection_rate';
      s.tokens -= 1;
    }
    s.conns++;
    return null;
  }

  /** A connection admitted from `ip` has ended. */
  release(ip: string): void {
    const s = this.sources.get(ip);
    if (s !== undefined && s.conns > 0) s.conns--;
  }

  /** Forgets sources with no connection and a full bucket, so the map tracks only live ones. */
  sweep(now: number): void {
    for (const [ip, s] of this.sources) {
      if (s.conns === 0 && (this.rate === 0 || s.tokens + ((now - s.last) * this.rate) / 1000 >= this.burst)) this.sources.delete(ip);
    }
  }

  get tracked(): number {
    return this.sources.size;
  }
}

/** Normalises an IPv4-mapped IPv6 address (::ffff:192.0.2.1) to its IPv4 form. */
export function sourceOf(remoteAddress: string | undefined): string {
  if (!remoteAddress) return 'unknown';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.') ? remoteAddress.slice(7) : remoteAddress;
}

/**
 * A connection's remote end as every log line, refusal and /clients entry writes it:
 * 192.0.2.1:40000 (IPv4-mapped addresses as IPv4), [2001:db8::1]:40000. Read it when the
 * connection arrives: after a reset Node no longer knows the address.
 */
export function remoteOf(sock: { remoteAddress?: string; remotePort?: number }): string {
  const ip = sourceOf(sock.remoteAddress);
  if (ip === 'unknown' || sock.remotePort === undefined) return 'unknown';
  return flat(`${ip.includes(':') ? `[${ip}]` : ip}:${sock.remotePort}`);
}

/**
 * `s` as one flat string. A template literal makes a rope (a string per part and one
 * joining them); a session keeps its remote end as long as it lives, so one string costs
 * it about 60 bytes less. Addresses and ports are ASCII.
 */
function flat(s: string): string {
  return Buffer.from(s, 'latin1').toString('latin1');
}

/**
 * Lets go of what Node cached on `sock` when its remote end was read (an object and the
 * address text, about 100 bytes per connection): read once, kept by the caller as
 * remoteOf() wrote it. A later read asks the kernel again.
 */
export function forgetPeer(sock: object): void {
  if ((sock as { _peername?: unknown })._peername !== undefined) (sock as { _peername?: unknown })._peername = undefined;
}

/**
 * What per-source limits count under: an IPv4 address itself, an IPv6 address by its /64,
 * since one subscriber usually holds a whole /64 and could otherwise use a new address per
 * connection.
 */
export function limitKey(ip: string): string {
  if (!ip.includes(':')) return ip;
  const bare = ip.split('%')[0];
  const [head, tail] = bare.split('::');
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':') + '::/64';
}

/** What per-source limits count a connection under, from its remote end as remoteOf() writes it. */
export function sourceKey(remote: string): string {
  const end = remote.startsWith('[') ? remote.indexOf(']') : remote.lastIndexOf(':');
  return limitKey(end > 0 ? remote.slice(remote.startsWith('[') ? 1 : 0, end) : remote);
}
