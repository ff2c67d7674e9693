// Seed inputs every target can start from: the byte-exact examples of PROTOCOL.md (each code
// block of hex lines, as one frame), read from the file so that they follow it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/js/fuzz/engine/). */
export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** The frames PROTOCOL.md shows byte for byte, in order. */
export function protocolExamples(): Uint8Array[] {
  const text = readFileSync(ROOT + 'PROTOCOL.md', 'utf8');
  const out: Uint8Array[] = [];
  for (const block of text.split('```').filter((_, i) => i % 2 === 1)) {
    const bytes: number[] = [];
    for (const line of block.split('\n')) {
      // The hex of a line is its first run of two-digit groups; the rest is commentary.
      const m = /^((?:[0-9a-f]{2} )*[0-9a-f]{2})(?:\s|$)/.exec(line.trim());
      if (m) bytes.push(...m[1].split(' ').map((h) => parseInt(h, 16)));
    }
    if (bytes.length >= 20) out.push(Uint8Array.from(bytes));
  }
  return out;
}
