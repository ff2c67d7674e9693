// WebSocket masking (RFC 6455 §5.3) four bytes at a time, for the `ws` package in the CLIs.
// ws masks and unmasks a byte at a time in JavaScript unless the optional native addon
// `bufferutil` is there, and every byte a client sends is masked: on Node 20 that loop was
// most of what the server spent on a WebSocket client's upload. build.mjs bundles this
// module into the CLIs in bufferutil's place (an esbuild alias); it has bufferutil's two
// functions, and ws calls them as it would the addon's (for 32 bytes and more).

/** The platform stores the low byte of a word first (every machine Node runs on but s390x). */
const LITTLE = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** XORs buf[0, n) with the mask, whose byte 0 applies at buf[0]. */
function xor(buf: Uint8Array, mask: Uint8Array, n: number): void {
  let i = 0;
  // Byte by byte to the first 4-byte boundary of the memory, then a word at a time.
  const lead = Math.min(n, (4 - (buf.byteOffset & 3)) & 3);
  for (; i < lead; i++) buf[i] ^= mask[i & 3];
  const words = (n - i) >>> 2;
  if (words > 0) {
    const m0 = mask[i & 3];
    const m1 = mask[(i + 1) & 3];
    const m2 = mask[(i + 2) & 3];
    const m3 = mask[(i + 3) & 3];
    const key = LITTLE ? (m0 | (m1 << 8) | (m2 << 16) | (m3 << 24)) >>> 0 : ((m0 << 24) | (m1 << 16) | (m2 << 8) | m3) >>> 0;
    const w = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    for (let j = 0; j < words; j++) w[j] ^= key;
    i += words * 4;
  }
  for (; i < n; i++) buf[i] ^= mask[i & 3];
}

/** bufferutil's unmask: the payload in place. */
export function unmask(buffer: Uint8Array, mask: Uint8Array): void {
  xor(buffer, mask, buffer.length);
}

/** bufferutil's mask: `length` bytes of `source`, masked, into `output` at `offset`. */
export function mask(source: Uint8Array, mask: Uint8Array, output: Uint8Array, offset: number, length: number): void {
  output.set(length === source.length ? source : source.subarray(0, length), offset);
  xor(output.subarray(offset, offset + length), mask, length);
}
