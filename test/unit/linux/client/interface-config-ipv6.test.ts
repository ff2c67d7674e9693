// The IPv6 part of what simplevpn-client changes on its tun (linux/client/interface-config.ts):
// the address turned on, changed or taken off as a whole, and its routes, without a device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Configured, type Pushed, interfaceChanges, routeText } from '../../../../linux/client/interface-config.js';

const NOTHING: Configured = { addressing: null, routes: [] };
const r = (s: string) => {
  const i = s.lastIndexOf('/');
  return { network: s.slice(0, i), prefix: +s.slice(i + 1) };
};
const texts = (routes: { network: string; prefix: number }[]) => routes.map(routeText);
const pushed = (address6: string | null, routes6: string[] = []): Pushed => ({
  address: '10.0.0.5',
  prefix: 24,
  mtu: 65000,
  routes: [],
  ipv6: address6 === null ? null : { address: address6, prefix: 64, gateway: 'fd00::a00:1', routes: routes6.map(r) },
});

test('no IPv6 granted: nothing IPv6 to do', () => {
  const c = interfaceChanges(NOTHING, pushed(null));
  assert.is(c.addAddress6, null);
  assert.is(c.removeAddress6, null);
  assert.equal([c.addRoutes6, c.deleteRoutes6], [[], []]);
  assert.is(c.after.addressing6, null);
});

test('the first IPv6 grant puts the address on and adds its routes; the same again changes nothing', () => {
  const first = interfaceChanges(NOTHING, pushed('fd00::a00:5', ['2001:db8:1::/48', '::/0']));
  assert.equal(first.addAddress6, { address: 'fd00::a00:5', prefix: 64 });
  assert.is(first.removeAddress6, null);
  assert.equal(texts(first.addRoutes6), ['2001:db8:1::/48', '::/0']);
  const again = interfaceChanges(first.after, pushed('fd00::a00:5', ['2001:db8:1::/48', '::/0']));
  assert.equal([again.addAddress6, again.removeAddress6, again.addRoutes6, again.deleteRoutes6], [null, null, [], []]);
  assert.equal(again.after, first.after);
});

test('another IPv6 address: the old one off, the new one on; routes changed by difference', () => {
  const first = interfaceChanges(NOTHING, pushed('fd00::a00:5', ['2001:db8:1::/48']));
  const next = interfaceChanges(first.after, pushed('fd00::a00:6', ['2001:db8:1::/48', '2001:db8:2::/48']));
  assert.equal(next.removeAddress6, { address: 'fd00::a00:5', prefix: 64 });
  assert.equal(next.addAddress6, { address: 'fd00::a00:6', prefix: 64 });
  assert.equal(texts(next.addRoutes6), ['2001:db8:2::/48']);
  assert.equal(next.deleteRoutes6, []);
});

test('IPv6 no longer granted: the address off and its routes deleted', () => {
  const first = interfaceChanges(NOTHING, pushed('fd00::a00:5', ['2001:db8:1::/48']));
  const next = interfaceChanges(first.after, pushed(null));
  assert.equal(next.removeAddress6, { address: 'fd00::a00:5', prefix: 64 });
  assert.is(next.addAddress6, null);
  assert.equal(texts(next.deleteRoutes6), ['2001:db8:1::/48']);
  assert.equal([next.after.addressing6, next.after.routes6], [null, []]);
});

test.run();
