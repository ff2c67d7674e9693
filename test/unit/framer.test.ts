import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Framer } from '../../client-sdk/src/framer.js';

test('a seed keepalive is one 20-byte frame', () => {
  const f = new Framer();
  const ka = Uint8Array.from([0x45, 0x14, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
  f.push(ka);
  const out = f.next();
  assert.ok(out);
  assert.is(out!.length, 20);
  assert.is(f.next(), null);
});

test.run();
