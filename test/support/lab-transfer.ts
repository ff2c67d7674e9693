// A byte-exact TCP transfer between two hosts of a lab (test/support/lab.ts), through
// whatever route `toAddr` takes from `from`: the sink listens on `to`, the source sends
// `bytes` and both report a sha256 of what went through. Each call takes the next port of
// the caller's range, so that a transfer never meets a socket an earlier one left in TIME_WAIT.
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { FIXTURES } from './paths.js';
import type { Host } from './lab.js';

/** Transfers on ports from `firstPort` up; returns the time of each in ms. */
export function transfers(firstPort: number): (from: Host, to: Host, toAddr: string, bytes: number) => Promise<number> {
  let port = firstPort;
  return async (from, to, toAddr, bytes) => {
    const p = String(port++);
    const sink = to.node(`sink${p}`, join(FIXTURES, 'tcp-sink.js'), [toAddr, p]);
    await sink.waitFor('listening');
    const source = from.node(`source${p}`, join(FIXTURES, 'tcp-source.js'), [toAddr, p, String(bytes)]);
    const sent = await source.waitFor('sent', () => true, 120_000);
    const got = await sink.waitFor('received', () => true, 30_000);
    assert.is(got.bytes, bytes);
    assert.is(got.sha256, sent.sha256, `${from.name} -> ${to.name} byte for byte`);
    return Number(got.ms);
  };
}
