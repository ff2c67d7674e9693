// IPv6 inside the tunnel: addresses as 16-byte arrays, their text form, and the extension's
// IPv6 TLVs (types 24-31). Kept apart from control.ts so that the SDK core, which carries
// IPv6 packets but never formats or parses an IPv6 address, bundles none of this.

import { KIND_REPLY, eachTlv, extKind, type Tlv } from './control.js';

/** Byte offsets inside an IPv6 header. */
export const SRC6 = 8;
export const DST6 = 24;
export const HEADER6 = 40;
/** The smallest MTU a link carrying IPv6 may have (RFC 8200 §5). */
export const MIN_MTU6 = 1280;

/**
 * TLV types of the extension's IPv6 part (PROTOCOL.md, "IPv6"). In a request, T_IPV6 asks
 * for an address: empty for any, 16 bytes for the address wanted. In a reply it carries the
 * address granted and the prefix length of the subnet (17 bytes).
 */
export const T_IPV6 = 24;
/** 16 bytes: the server's own IPv6 address on the VPN. */
export const T_GATEWAY6 = 25;
/** 17 bytes: network (16), prefix length (1); one TLV per route. */
export const T_ROUTE6 = 26;

/** Refusal codes of the IPv6 part. */
export const REFUSE_IN_USE6 = 13; // the IPv6 address asked for is held by another client
export const REFUSE_OUTSIDE6 = 14; // outside the server's IPv6 subnet, reserved, or the server has no IPv6

/** Text to 16 bytes, or null when `s` is not an IPv6 address (dotted IPv4 tails are accepted). */
export function parseIPv6(s: string): Uint8Array | null {
  s = String(s);
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(s)) return null;
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(p);
        if (!m || m.slice(1).some((x) => +x > 255)) return null;
        out.push((+m[1] << 8) | +m[2], (+m[3] << 8) | +m[4]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const n = head.length + tail.length;
  if (halves.length === 1 ? n !== 8 : n > 7) return null;
  const all = [...head, ...new Array<number>(8 - n).fill(0), ...tail];
  const b = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    b[2 * i] = all[i] >> 8;
    b[2 * i + 1] = all[i];
  }
  return b;
}

/** b[o, o + 16) as RFC 5952 text: lower case, the longest run of two or more zero groups as ::. */
export function formatIPv6(b: Uint8Array, o = 0): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[o + 2 * i] << 8) | b[o + 2 * i + 1]);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j === i ? i + 1 : j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':');
  return best < 0 ? hex(g) : `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

/** True when the 16 bytes at a[ao] and b[bo] are the same address. */
export function sameAddress6(a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < 16; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

/** True when the address at b[o] lies in network/prefix. */
export function inPrefix6(b: Uint8Array, o: number, network: Uint8Array, prefix: number): boolean {
  const whole = prefix >> 3;
  for (let i = 0; i < whole; i++) if (b[o + i] !== network[i]) return false;
  const bits = prefix & 7;
  return bits === 0 || ((b[o + whole] ^ network[whole]) & (0xff00 >> bits) & 0xff) === 0;
}

/** `network` with every bit past `prefix` cleared: a copy. */
export function maskPrefix6(network: Uint8Array, prefix: number): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    b[i] = network[i] & ((0xff00 >> bits) & 0xff);
  }
  return b;
}

/** The value of a request's T_IPV6: any address (no argument), or the one wanted. */
export function ipv6Request(wanted?: string): Uint8Array {
  if (wanted === undefined) return new Uint8Array(0);
  const a = parseIPv6(wanted);
  if (a === null) throw new Error('invalid IPv6 address: ' + wanted);
  return a;
}

/** What a reply's IPv6 TLVs say, as text. */
export interface Ipv6Config {
  address: string;
  prefix: number;
  gateway: string | null;
  routes: Array<{ network: string; prefix: number }>;
}

/** The same, as bytes, for the encoder. */
export interface Ipv6Grant {
  address: Uint8Array;
  prefix: number;
  gateway?: Uint8Array;
  routes: Array<[network: Uint8Array, prefix: number]>;
}

const withPrefix = (a: Uint8Array, p: number): Uint8Array => {
  const v = new Uint8Array(17);
  v.set(a);
  v[16] = p;
  return v;
};

/** The reply TLVs granting an IPv6 address: address and prefix, gateway, routes. */
export function ipv6Tlvs(g: Ipv6Grant): Tlv[] {
  const t: Tlv[] = [[T_IPV6, withPrefix(g.address, g.prefix)]];
  if (g.gateway) t.push([T_GATEWAY6, g.gateway.slice()]);
  for (const [n, p] of g.routes) t.push([T_ROUTE6, withPrefix(n, p)]);
  return t;
}

/**
 * Reads the IPv6 grant of a server's reply (the SDK's ready state holds it as `reply`), or
 * null when it grants no address or is no extension reply (a seed server echoes our request,
 * TLVs and all). Values of the wrong length are skipped, as every reader does.
 */
export function readIpv6Config(reply: Uint8Array | undefined): Ipv6Config | null {
  if (!reply || extKind(reply) !== KIND_REPLY) return null;
  let c: Ipv6Config | null = null;
  let gateway: string | null = null;
  const routes: Ipv6Config['routes'] = [];
  eachTlv(reply, (t, v) => {
    if (t === T_IPV6 && v.length === 17 && v[16] <= 128) c = { address: formatIPv6(v), prefix: v[16], gateway: null, routes };
    else if (t === T_GATEWAY6 && v.length === 16) gateway = formatIPv6(v);
    else if (t === T_ROUTE6 && v.length === 17 && v[16] <= 128) routes.push({ network: formatIPv6(maskPrefix6(v, v[16])), prefix: v[16] });
  });
  if (c) (c as Ipv6Config).gateway = gateway;
  return c;
}
