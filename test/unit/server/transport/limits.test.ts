// How a connection's remote end is written and what per-source limits count it under: IPv4,
// IPv4-mapped IPv6, IPv6 by its /64, and a connection Node no longer knows the address of.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SourceLimits, limitKey, remoteOf, sourceKey } from '../../../../server/src/transport/limits.js';

test('remoteOf: IPv4, IPv4-mapped as IPv4, IPv6 in brackets; "unknown" without an address or a port, never "unknown:undefined"', () => {
  assert.is(remoteOf({ remoteAddress: '192.0.2.1', remotePort: 40000 }), '192.0.2.1:40000');
  assert.is(remoteOf({ remoteAddress: '::ffff:192.0.2.1', remotePort: 40000 }), '192.0.2.1:40000');
  assert.is(remoteOf({ remoteAddress: '2001:db8::1', remotePort: 40000 }), '[2001:db8::1]:40000');
  assert.is(remoteOf({}), 'unknown');
  assert.is(remoteOf({ remoteAddress: '192.0.2.1' }), 'unknown');
});

test('sourceKey: the limit key of a remote end as remoteOf writes it (IPv6 by its /64)', () => {
  for (const [remote, ip] of [
    ['192.0.2.1:40000', '192.0.2.1'],
    ['[2001:db8:1:2:3::1]:40000', '2001:db8:1:2:3::1'],
    ['[::1]:5', '::1'],
    // A client forwarded by a trusted proxy is written without a port.
    ['203.0.113.5', '203.0.113.5'],
    ['[2001:db8:1:2::7]', '2001:db8:1:2::7'],
  ])
    assert.is(sourceKey(remote), limitKey(ip), remote);
  assert.is(sourceKey('[2001:db8:1:2:3::1]:1'), sourceKey('[2001:db8:1:2:ffff::9]:2'), 'one /64');
  assert.is(sourceKey('unknown'), 'unknown');
});

test('hold(): the count of a socket is released when it closes, once, by one listener shared by every socket', () => {
  const limits = new SourceLimits(2, 0, 0);
  const listeners: Array<{ f: () => void; s: object }> = [];
  const sock = () => {
    const s = { on: (_e: 'close', f: () => void) => listeners.push({ f, s }) };
    return s;
  };
  assert.is(limits.admit('192.0.2.1', 0), null);
  limits.hold(sock(), '192.0.2.1');
  assert.is(limits.admit('192.0.2.1', 0), null);
  limits.hold(sock(), '192.0.2.1');
  assert.is(limits.admit('192.0.2.1', 0), 'per_source_limit');
  listeners[0].f.call(listeners[0].s);
  assert.is(limits.admit('192.0.2.1', 0), null);
  assert.is(listeners[0].f, listeners[1].f);
});

test.run();
