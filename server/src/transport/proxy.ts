// The client behind a reverse proxy. A connection from a trusted proxy (--trust-proxy)
// carries the client's address in X-Forwarded-For or Forwarded (RFC 7239); one from
// anywhere else is its own client, whatever it claims. Each proxy appends the address it
// received the request from, so the list is read from the right: addresses of trusted
// proxies are skipped, and the first one that is not trusted is the client. Whatever lies
// to the left of it was written by the client itself and means nothing.

import { BlockList, isIP } from 'node:net';
import type { TrustedNet } from '../config/config.js';
import { sourceOf } from './limits.js';

export class TrustedProxies {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(nets: readonly TrustedNet[]) {
    for (const n of nets) this.list.addSubnet(n.address, n.prefix, n.family);
    this.size = nets.length;
  }

  /** Whether `ip` (as sourceOf() writes it) is one of the trusted proxies. */
  has(ip: string): boolean {
    if (this.size === 0) return false;
    const family = isIP(ip);
    return family !== 0 && this.list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The client's address for a request that came from `peer`: the forwarded one when
   * `peer` is trusted and says whom it forwards for, else `peer` itself. X-Forwarded-For
   * (what nginx, HAProxy and most proxies write) is read when present, Forwarded only when
   * it is not. `forwarded`: the chain was read (the peer is trusted and named a client).
   */
  client(peer: string, xff: string[] | undefined, fwd: string[] | undefined): { ip: string; forwarded: boolean } {
    if (!this.has(peer)) return { ip: peer, forwarded: false };
    const chain = xff ? forwardedFor(xff) : fwd ? forwardedElements(fwd) : [];
    let ip = peer;
    let forwarded = false;
    for (let i = chain.length - 1; i >= 0; i--) {
      const hop = chain[i];
      // Something a trusted hop would not write: what is left of it is the client's own.
      if (hop === null) break;
      ip = hop;
      forwarded = true;
      if (!this.has(hop)) break;
    }
    return { ip, forwarded };
  }
}

/** An address as a forwarding header writes it (optionally with a port, IPv6 in brackets), or null. */
function hopAddress(s: string): string | null {
  let t = s.trim();
  if (t.startsWith('"') && t.endsWith('"') && t.length >= 2) t = t.slice(1, -1);
  const bracket = /^\[([^\]]+)\](?::\d+)?$/.exec(t);
  if (bracket) t = bracket[1];
  else if (/^[\d.]+:\d+$/.test(t)) t = t.slice(0, t.indexOf(':'));
  return isIP(t) ? sourceOf(t) : null;
}

/** X-Forwarded-For: addresses separated by commas, over one or more headers. */
export function forwardedFor(values: string[]): Array<string | null> {
  return values.flatMap((v) => v.split(',')).map(hopAddress);
}

/** Forwarded (RFC 7239): the for= of each element; an element without one, or an obfuscated one, is null. */
export function forwardedElements(values: string[]): Array<string | null> {
  return values
    .flatMap((v) => v.split(','))
    .map((el) => {
      for (const pair of el.split(';')) {
        const eq = pair.indexOf('=');
        if (eq > 0 && pair.slice(0, eq).trim().toLowerCase() === 'for') return hopAddress(pair.slice(eq + 1));
      }
      return null;
    });
}
