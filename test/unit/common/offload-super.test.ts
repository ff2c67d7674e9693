// KIND_SUPER frames and the T_OFFLOAD request: byte for byte as PROTOCOL.md's examples.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ANY, KIND_REQUEST, OFFLOAD_SUPER, SUPER_HEADER, T_MTU, T_OFFLOAD, extMessage, u16, u8 } from '../../../protocol/index.js';
import { MAX_SUPER, isSuperFrame, superGsoSize, writeSuperHeader } from '../../../common/offload/super.js';
import { TCP_ACK } from '../../../common/offload/vnet.js';
import { refPacket } from '../../support/offload-reference.js';
import { ROOT } from '../../support/paths.js';

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
const doc = readFileSync(join(ROOT, 'PROTOCOL.md'), 'utf8');
/** The hex bytes of the example block that follows `heading`, comments dropped. */
function example(after: string): string {
  const block = doc.slice(doc.indexOf(after)).split('```')[1];
  return block
    .split('\n')
    .map((l) => /^((?:[0-9a-f]{2} )*[0-9a-f]{2})/.exec(l)?.[1] ?? '')
    .filter(Boolean)
    .join(' ');
}

test('a KIND_SUPER frame header and the T_OFFLOAD request are as PROTOCOL.md shows them', () => {
  const p = refPacket({ flow: { src: 0x0a000002, dst: 0x0a000003, sport: 1, dport: 2, tos: 0, ttl: 64, df: true, options: new Uint8Array(12), ack: 0, window: 0 }, id: 0, seq: 0, flags: TCP_ACK, payload: new Uint8Array(2 * 1448) });
  assert.is(p.length, 2948);
  const f = new Uint8Array(SUPER_HEADER + p.length);
  f.set(p, SUPER_HEADER);
  assert.is(writeSuperHeader(f, 0, p.length, 1448), 2974);
  assert.is(hex(f.subarray(0, SUPER_HEADER + 4)), example('Two segments of 1448 bytes'));
  assert.ok(isSuperFrame(f, 0, f.length));
  assert.is(superGsoSize(f, 0), 1448);
  const req = extMessage(0, ANY, KIND_REQUEST, [
    [T_MTU, u16(1500)],
    [T_OFFLOAD, u8(OFFLOAD_SUPER)],
  ]);
  assert.is(hex(req), example('asks for an MTU of 1500 and declares it'));
});

test('what is not a KIND_SUPER frame with room for a packet is not taken for one', () => {
  const f = new Uint8Array(SUPER_HEADER + 60);
  writeSuperHeader(f, 0, 60, 100);
  assert.ok(isSuperFrame(f, 0, f.length));
  assert.not.ok(isSuperFrame(f, 0, SUPER_HEADER + 40), 'no room for a TCP/IPv4 packet with data');
  for (const [at, v] of [[9, 6], [20, 0], [21, 0], [22, 2]]) {
    const g = f.slice();
    g[at] = v;
    assert.not.ok(isSuperFrame(g, 0, g.length), `byte ${at} = ${v}`);
  }
  assert.is(MAX_SUPER + SUPER_HEADER, 65535);
});

test.run();
