// WebSocket masking (RFC 6455 §5.3) for the `ws` package in the CLIs. Every byte a client
// sends is masked and the server unmasks it, so on a wss/ws tunnel the whole upload goes
// through these two functions on both ends. ws looks for the optional native addon
// `bufferutil` and masks a byte at a time in JavaScript without it. build.mjs bundles this
// module into the CLIs in bufferutil's place (an esbuild alias), and this module loads the
// real addon at run time from beside the CLI (node_modules/bufferutil, found by
// node-gyp-build from its prebuilt binaries) when it is installed and its native part
// loads; otherwise it masks in JavaScript four bytes at a time. ws calls these as it would
// the addon's (for 32 bytes and more); `maskImplementation` says which one is in use.

import { createRequire } from 'node:module';

type MaskFn = (source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number) => void;
type UnmaskFn = (buffer: Uint8Array, mask: Uint8Array) => void;

/**
 * bufferutil's native functions, or null: not installed, or its binary did not load (the
 * package then hands out its own byte-at-a-time fallback, which is slower than ours). The
 * require goes through createRequire so that esbuild leaves it alone: a bundled or aliased
 * bufferutil would not find its binary.
 */
function loadNative(): { mask: MaskFn; unmask: UnmaskFn } | null {
  if (process.env.SIMPLEVPN_WS_MASK === 'js') return null;
  try {
    const req = createRequire(import.meta.url);
    const addon = req('bufferutil') as { mask: MaskFn; unmask: UnmaskFn };
    let fallback: { mask: MaskFn } | null = null;
    try {
      fallback = req('bufferutil/fallback.js') as { mask: MaskFn };
    } catch {
      // A bufferutil without a fallback file: what it exports is native.
    }
    if (typeof addon?.mask !== 'function' || typeof addon.unmask !== 'function' || addon.mask === fallback?.mask) return null;
    return addon;
  } catch {
    return null;
  }
}

/** The platform stores the low byte of a word first (every machine Node runs on but s390x). */
const LITTLE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

// A word view of the memory the last call worked on. ws hands over payloads that lie in one
// read chunk (the receiver's frames) or in Buffer's shared pool (the sender's small frames),
// so consecutive calls mostly fall in the same ArrayBuffer: the view is made once per chunk,
// not once per frame.
let viewed: ArrayBufferLike | null = null;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/** XORs buf[at, at + n) with the mask, whose byte 0 applies at buf[at]. */
function xor(buf: Uint8Array, at: number, n: number, mask: Uint8Array): void {
  let i = 0;
  // Byte by byte to the first 4-byte boundary of the memory, then a word at a time.
  const lead = Math.min(n, (4 - ((buf.byteOffset + at) & 3)) & 3);
  for (; i < lead; i++) buf[at + i] ^= mask[i & 3];
  const count = (n - i) >>> 2;
  if (count > 0) {
    const m0 = mask[i & 3];
    const m1 = mask[(i + 1) & 3];
    const m2 = mask[(i + 2) & 3];
    const m3 = mask[(i + 3) & 3];
    const key = LITTLE ? m0 | (m1 << 8) | (m2 << 16) | (m3 << 24) : (m0 << 24) | (m1 << 16) | (m2 << 8) | m3;
    if (buf.buffer !== viewed) {
      viewed = buf.buffer;
      words = new Uint32Array(buf.buffer, 0, buf.buffer.byteLength >>> 2);
    }
    const w = words;
    const first = (buf.byteOffset + at + i) >>> 2;
    const end = first + count;
    for (let j = first; j < end; j++) w[j] ^= key;
    i += count * 4;
  }
  for (; i < n; i++) buf[at + i] ^= mask[i & 3];
}

/** Unmasks the payload in place (bufferutil's unmask). */
function jsUnmask(buffer: Uint8Array, mask: Uint8Array): void {
  xor(buffer, 0, buffer.length, mask);
}

/** `length` bytes of `source`, masked, into `output` at `offset` (bufferutil's mask). */
function jsMask(source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number): void {
  output.set(length === source.length ? source : source.subarray(0, length), offset);
  xor(output, offset, length, mask);
}

const native = loadNative();

/** Which masking ws gets: bufferutil's native code or this module's JavaScript. */
export const maskImplementation: 'bufferutil' | 'js' = native ? 'bufferutil' : 'js';
export const mask: MaskFn = native ? native.mask : jsMask;
export const unmask: UnmaskFn = native ? native.unmask : jsUnmask;
/** The JavaScript masking, whichever is in use (for its tests). */
export { jsMask, jsUnmask };
