// IPv4 addresses as unsigned 32-bit numbers, and the few header fields the VPN reads.

/** Byte offsets inside an IPv4 header. */
export const SRC = 12;
export const DST = 16;
export const HEADER = 20;

export const ANY = 0; // 0.0.0.0
export const ALL = 0xffffffff; // 255.255.255.255

export function readU32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = v >>> 16;
  b[o + 2] = v >>> 8;
  b[o + 3] = v;
}

/** Dotted quad to number, or -1 when `s` is not exactly four decimal octets. */
export function parseIPv4(s: string): number {
  const parts = String(s).split('.');
  if (parts.length !== 4) return -1;
  let n = 0;
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p) || +p > 255) return -1;
    n = n * 256 + +p;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return (n >>> 24) + '.' + ((n >>> 16) & 255) + '.' + ((n >>> 8) & 255) + '.' + (n & 255);
}

/** 24 -> 0xffffff00. Prefix 0 gives 0. */
export function prefixToMask(prefix: number): number {
  return prefix <= 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}
