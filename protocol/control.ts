// Control messages: address request and reply, keepalive, and the negotiated extension.
// PROTOCOL.md has the byte diagrams. The seed messages are bare 20-byte IPv4 headers with
// total length 0; the extension appends TLVs behind a marker that a seed peer never reads.

import { ALL, ANY, DST, HEADER, SRC, readU32, writeU32 } from './ipv4.js';

/** IP protocol of extension messages (RFC 3692: for experimentation). */
export const PROTO_EXT = 253;
/** First bytes after the header of an extension message: 'S' 'V' kind version. */
const MAGIC_S = 0x53;
const MAGIC_V = 0x56;
export const EXT_VERSION = 1;
export const EXT_START = HEADER + 4;

/** Extension message kinds. */
export const KIND_REQUEST = 1;
export const KIND_REPLY = 2;
export const KIND_REFUSAL = 3;
export const KIND_CHALLENGE = 4; // server to client: a nonce to prove the secret over
export const KIND_RESPONSE = 5; // client to server: the proof over that nonce
/**
 * A TCP/IPv4 super-packet (up to 64 KiB, cut into segments of gso_size bytes by whoever
 * cannot take it whole), between endpoints that both declared T_OFFLOAD: 2 bytes of
 * gso_size after the marker, then the packet. Never sent to a peer that did not declare it.
 */
export const KIND_SUPER = 6;
/** Bytes before the packet in a KIND_SUPER frame: header, marker, gso_size. */
export const SUPER_HEADER = HEADER + 6;

/** TLV types. Values are big-endian; unknown types are skipped by every reader. */
export const T_PREFIX = 1; // 1 byte: netmask as a prefix length
export const T_GATEWAY = 2; // 4 bytes: the server's own VPN address
export const T_MTU = 3; // 2 bytes
export const T_KEEPALIVE = 4; // 2 bytes: seconds of silence before the client sends a keepalive
export const T_IDLE_TIMEOUT = 5; // 2 bytes: seconds of silence before the server drops a client
export const T_ROUTE = 6; // 5 bytes: network, prefix length; repeated per route
export const T_LEASE = 7; // opaque: reply gives it, a later request presents it to take the address back
export const T_REASON = 8; // 1 byte: refusal code (REFUSE_*)
export const T_TEXT = 9; // ASCII: refusal text for people
export const T_CLIENT = 16; // ASCII: client software or device name, for the server's logs
export const T_AUTH_ID = 17; // ASCII: client identity
export const T_AUTH_PROOF = 18; // opaque: the secret itself (bearer), or 32 bytes answering a challenge
export const T_AUTH_NONCE = 19; // 32 bytes: the server's fresh random nonce (challenge)
export const T_AUTH_KDF = 20; // log2 N, r, p, salt: how a secret becomes the key (challenge)
export const T_OFFLOAD = 32; // 1 byte: OFFLOAD_* bits; in a request, what the client takes; in the reply, what the server does
/** T_OFFLOAD bit: takes and sends KIND_SUPER frames. */
export const OFFLOAD_SUPER = 1;

/** Refusal codes carried in T_REASON. */
export const REFUSE_IN_USE = 1;
export const REFUSE_OUTSIDE = 2; // not inside the subnet, or a reserved address
export const REFUSE_EXHAUSTED = 3;
export const REFUSE_FULL = 4; // max clients
export const REFUSE_AUTH_REQUIRED = 5;
export const REFUSE_AUTH_FAILED = 6;
export const REFUSE_RATE = 7;
export const REFUSE_SHUTDOWN = 8;
export const REFUSE_NOT_ALLOWED = 9; // credentials do not allow this address
// The lease store (etcd, the state file) cannot record the lease now: try again, or another
// server of the cluster. Not in Refusal below, to keep the SDK bundle's bytes: a device
// treats it as any refusal it does not know, and retries.
export const REFUSE_STORE_UNAVAILABLE = 10;
export const REFUSE_IDENTITY = 11; // the client certificate names another id, or none the server knows
export const REFUSE_BEARER = 12; // the secret itself is not accepted here: answer a challenge

/**
 * The refusal codes by name, for code outside the protocol (the SDK's users, the CLIs):
 * one object, so a device bundle carries one export for all of them.
 */
export const Refusal = {
  IN_USE: REFUSE_IN_USE,
  OUTSIDE: REFUSE_OUTSIDE,
  EXHAUSTED: REFUSE_EXHAUSTED,
  FULL: REFUSE_FULL,
  AUTH_REQUIRED: REFUSE_AUTH_REQUIRED,
  AUTH_FAILED: REFUSE_AUTH_FAILED,
  RATE: REFUSE_RATE,
  SHUTDOWN: REFUSE_SHUTDOWN,
  NOT_ALLOWED: REFUSE_NOT_ALLOWED,
  IDENTITY: REFUSE_IDENTITY,
  BEARER: REFUSE_BEARER,
} as const;

export type Tlv = [type: number, value: Uint8Array];

/** A seed control header: 45 14 00 00 00 00 00 00 40 00 00 00, then source and destination. */
export function controlMessage(src: number, dst: number, extra = 0): Uint8Array {
  const m = new Uint8Array(HEADER + extra);
  m[0] = 0x45;
  m[1] = 0x14;
  m[8] = 0x40;
  writeU32(m, SRC, src);
  writeU32(m, DST, dst);
  return m;
}

/** The keepalive, byte for byte as the seed sends it. Never modified. */
export const KEEPALIVE = controlMessage(ALL, ALL);

/** A seed request: dynamic when `address` is 0, static otherwise. */
export function seedRequest(address: number): Uint8Array {
  return controlMessage(address, ANY);
}

/** An extension message: the control header with protocol 253 and total length set. */
export function extMessage(src: number, dst: number, kind: number, tlvs: Tlv[]): Uint8Array {
  let size = 4;
  for (let i = 0; i < tlvs.length; i++) size += 2 + tlvs[i][1].length;
  const m = controlMessage(src, dst, size);
  const total = HEADER + size;
  m[2] = total >> 8;
  m[3] = total;
  m[9] = PROTO_EXT;
  m[20] = MAGIC_S;
  m[21] = MAGIC_V;
  m[22] = kind;
  m[23] = EXT_VERSION;
  let o = EXT_START;
  for (let i = 0; i < tlvs.length; i++) {
    const v = tlvs[i][1];
    m[o] = tlvs[i][0];
    m[o + 1] = v.length;
    m.set(v, o + 2);
    o += 2 + v.length;
  }
  return m;
}

const isV4 = (f: Uint8Array) => f.length >= HEADER && f[0] >> 4 === 4;

export function isKeepalive(f: Uint8Array): boolean {
  return isV4(f) && readU32(f, SRC) === ALL && readU32(f, DST) === ALL;
}

/** Any frame with destination 0.0.0.0 is an address request (seed or extension). */
export function isRequest(f: Uint8Array): boolean {
  return isV4(f) && readU32(f, DST) === ANY;
}

/** The extension kind of a frame, or 0 when it is not an extension message. */
export function extKind(f: Uint8Array): number {
  return isV4(f) && f.length >= EXT_START && f[9] === PROTO_EXT && f[20] === MAGIC_S && f[21] === MAGIC_V ? f[22] : 0;
}

/** Calls fn for every TLV of an extension message; a truncated last TLV is ignored. */
export function eachTlv(f: Uint8Array, fn: (type: number, value: Uint8Array) => void): void {
  for (let o = EXT_START; o + 2 <= f.length; ) {
    const end = o + 2 + f[o + 1];
    if (end > f.length) return;
    fn(f[o], f.subarray(o + 2, end));
    o = end;
  }
}

export function u8(v: number): Uint8Array {
  return new Uint8Array([v]);
}

export function u16(v: number): Uint8Array {
  return new Uint8Array([v >> 8, v]);
}

export function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32(b, 0, v);
  return b;
}

/** ASCII only: the SDK runs where TextEncoder may not exist. Longer text is cut at 255. */
export function ascii(s: string): Uint8Array {
  const n = Math.min(s.length, 255);
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = s.charCodeAt(i) & 0x7f;
  return b;
}

export function readAscii(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i] & 0x7f);
  return s;
}

export const readU16 = (b: Uint8Array): number => (b[0] << 8) | b[1];

/** What a server pushes with an address. Fields the reply lacks stay undefined. */
export interface Config {
  prefix?: number;
  gateway?: number;
  mtu?: number;
  keepalive?: number;
  idleTimeout?: number;
  routes: Array<[network: number, prefix: number]>;
  lease?: Uint8Array;
}

/** Reads the TLVs of an extension reply. */
export function readConfig(f: Uint8Array): Config {
  const c: Config = { routes: [] };
  eachTlv(f, (t, v) => {
    const n = v.length;
    // A prefix length above 32 names no netmask: ignored, as a TLV of the wrong length is.
    if (t === T_PREFIX && n === 1 && v[0] <= 32) c.prefix = v[0];
    else if (t === T_GATEWAY && n === 4) c.gateway = readU32(v, 0);
    else if (t === T_MTU && n === 2) c.mtu = readU16(v);
    else if (t === T_KEEPALIVE && n === 2) c.keepalive = readU16(v);
    else if (t === T_IDLE_TIMEOUT && n === 2) c.idleTimeout = readU16(v);
    else if (t === T_ROUTE && n === 5 && v[4] <= 32) c.routes.push([readU32(v, 0), v[4]]);
    // A copy: `f` may be a view of a receive buffer the transport reuses (a Node Buffer's slice() would not copy).
    else if (t === T_LEASE) c.lease = Uint8Array.prototype.slice.call(v);
  });
  return c;
}

/** Encodes a configuration as reply TLVs. */
export function configTlvs(c: Config): Tlv[] {
  const t: Tlv[] = [];
  if (c.prefix !== undefined) t.push([T_PREFIX, u8(c.prefix)]);
  if (c.gateway !== undefined) t.push([T_GATEWAY, u32(c.gateway)]);
  if (c.mtu !== undefined) t.push([T_MTU, u16(c.mtu)]);
  if (c.keepalive !== undefined) t.push([T_KEEPALIVE, u16(c.keepalive)]);
  if (c.idleTimeout !== undefined) t.push([T_IDLE_TIMEOUT, u16(c.idleTimeout)]);
  for (const [net, p] of c.routes) {
    const v = new Uint8Array(5);
    writeU32(v, 0, net);
    v[4] = p;
    t.push([T_ROUTE, v]);
  }
  if (c.lease) t.push([T_LEASE, c.lease]);
  return t;
}

/** The reason of a refusal: its code (0 when absent) and text. */
export function readRefusal(f: Uint8Array): { code: number; text: string } {
  let code = 0;
  let text = '';
  eachTlv(f, (t, v) => {
    if (t === T_REASON && v.length === 1) code = v[0];
    else if (t === T_TEXT) text = readAscii(v);
  });
  return { code, text };
}

/** Request TLVs saying who the client is: its id and, to present it as is (bearer), its secret (ASCII, at most 255). Without a secret the server challenges. */
export function credentials(id: string, secret?: string): Tlv[] {
  const t: Tlv[] = [[T_AUTH_ID, ascii(id)]];
  if (secret !== undefined) t.push([T_AUTH_PROOF, ascii(secret)]);
  return t;
}

/**
 * What a challenge-response proof is computed over: 'S' 'V' 'a' 1, the id (length, ASCII),
 * the server's nonce and the address requested. A proof is good for that nonce only (one
 * connection), that id and that address.
 */
export function authMessage(id: string, nonce: Uint8Array, requested: number): Uint8Array {
  const name = ascii(id);
  const m = new Uint8Array(5 + name.length + nonce.length + 4);
  m.set([MAGIC_S, MAGIC_V, 0x61, 1, name.length]);
  m.set(name, 5);
  m.set(nonce, 5 + name.length);
  writeU32(m, m.length - 4, requested);
  return m;
}

/** How a secret becomes a key: scrypt parameters and salt, as a challenge carries them (T_AUTH_KDF). */
export interface Kdf {
  N: number;
  r: number;
  p: number;
  salt: Uint8Array;
}

/** What a challenge asks a client to prove: the message to sign and, for a client holding a secret, the KDF. Null when `challenge` lacks a nonce. */
export function readChallenge(challenge: Uint8Array, request: Uint8Array, id: string): { message: Uint8Array; kdf: Kdf | null } | null {
  let nonce: Uint8Array | null = null;
  let kdf: Kdf | null = null;
  eachTlv(challenge, (t, v) => {
    if (t === T_AUTH_NONCE && v.length >= 16) nonce = v;
    else if (t === T_AUTH_KDF && v.length >= 4 && v[0] < 32) kdf = { N: 2 ** v[0], r: v[1], p: v[2], salt: v.subarray(3) };
  });
  return nonce && { message: authMessage(id, nonce, readU32(request, SRC)), kdf };
}

/** The server's challenge to a request for `requested`: a fresh nonce, and the KDF of the id asked about. */
export function challengeMessage(requested: number, nonce: Uint8Array, kdf: Kdf): Uint8Array {
  const k = new Uint8Array(3 + kdf.salt.length);
  k.set([Math.log2(kdf.N), kdf.r, kdf.p]);
  k.set(kdf.salt, 3);
  return extMessage(requested, ANY, KIND_CHALLENGE, [
    [T_AUTH_NONCE, nonce],
    [T_AUTH_KDF, k],
  ]);
}

export function refusal(requested: number, code: number, text: string): Uint8Array {
  return extMessage(requested, ANY, KIND_REFUSAL, [
    [T_REASON, u8(code)],
    [T_TEXT, ascii(text)],
  ]);
}
