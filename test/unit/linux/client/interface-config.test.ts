// What simplevpn-client changes on its tun for each pushed configuration
// (linux/client/interface-config.ts), without a device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type Configured, type Pushed, interfaceChanges, routeText } from '../../../../linux/client/interface-config.js';

const NOTHING: Configured = { addressing: null, routes: [] };
const r = (s: string) => {
  const [network, prefix] = s.split('/');
  return { network, prefix: +prefix };
};
const pushed = (address: string, prefix: number, mtu: number, routes: string[] = []): Pushed => ({ address, prefix, mtu, routes: routes.map(r) });
const texts = (routes: { network: string; prefix: number }[]) => routes.map(routeText);

test('the first assignment configures address, prefix and MTU and adds every route, in the pushed order', () => {
  const c = interfaceChanges(NOTHING, pushed('10.0.0.5', 24, 65000, ['192.168.50.0/24', '172.16.0.0/12']));
  assert.equal(c.configure, { address: '10.0.0.5', prefix: 24, mtu: 65000 });
  assert.equal(texts(c.addRoutes), ['192.168.50.0/24', '172.16.0.0/12']);
  assert.equal(c.deleteRoutes, []);
  assert.equal(c.after, { addressing: { address: '10.0.0.5', prefix: 24, mtu: 65000 }, routes: [r('192.168.50.0/24'), r('172.16.0.0/12')], addressing6: null, routes6: [] });
});

test('the same configuration again (a reconnect) changes nothing', () => {
  const first = interfaceChanges(NOTHING, pushed('10.0.0.5', 24, 1500, ['192.168.50.0/24']));
  const again = interfaceChanges(first.after, pushed('10.0.0.5', 24, 1500, ['192.168.50.0/24']));
  assert.is(again.configure, null);
  assert.equal(again.addRoutes, []);
  assert.equal(again.deleteRoutes, []);
  assert.equal(again.after, first.after);
});

test('a new address, prefix or MTU alone reconfigures; routes are compared on their own', () => {
  const now = interfaceChanges(NOTHING, pushed('10.0.0.5', 24, 1500, ['192.168.50.0/24'])).after;
  for (const p of [pushed('10.0.0.6', 24, 1500, ['192.168.50.0/24']), pushed('10.0.0.5', 16, 1500, ['192.168.50.0/24']), pushed('10.0.0.5', 24, 9000, ['192.168.50.0/24'])]) {
    const c = interfaceChanges(now, p);
    assert.equal(c.configure, { address: p.address, prefix: p.prefix, mtu: p.mtu });
    assert.equal(c.addRoutes, [], 'the route stays');
    assert.equal(c.deleteRoutes, []);
  }
});

test('routes no longer pushed are deleted, new ones added, kept ones left alone', () => {
  const now = interfaceChanges(NOTHING, pushed('10.0.0.5', 24, 1500, ['192.168.50.0/24', '10.20.0.0/16', '172.16.0.0/12'])).after;
  const c = interfaceChanges(now, pushed('10.0.0.5', 24, 1500, ['172.16.0.0/12', '192.168.60.0/24']));
  assert.is(c.configure, null);
  assert.equal(texts(c.deleteRoutes), ['192.168.50.0/24', '10.20.0.0/16']);
  assert.equal(texts(c.addRoutes), ['192.168.60.0/24']);
  assert.equal(texts(c.after.routes), ['172.16.0.0/12', '192.168.60.0/24']);
});

test('the same network with another prefix is another route; a route pushed twice is added once', () => {
  const now = interfaceChanges(NOTHING, pushed('10.0.0.5', 24, 1500, ['192.168.0.0/16'])).after;
  const c = interfaceChanges(now, pushed('10.0.0.5', 24, 1500, ['192.168.0.0/24', '192.168.0.0/24']));
  assert.equal(texts(c.deleteRoutes), ['192.168.0.0/16']);
  assert.equal(texts(c.addRoutes), ['192.168.0.0/24']);
  assert.equal(texts(c.after.routes), ['192.168.0.0/24']);
});

test('a configuration with no routes deletes those there were', () => {
  const now = interfaceChanges(NOTHING, pushed('10.0.0.5', 16, 1500, ['192.168.50.0/24'])).after;
  const c = interfaceChanges(now, pushed('10.0.0.5', 16, 1500));
  assert.equal(texts(c.deleteRoutes), ['192.168.50.0/24']);
  assert.equal(c.after.routes, []);
});

test('the pushed state is not kept by reference: what is configured stays as it was', () => {
  const p = pushed('10.0.0.5', 24, 1500, ['192.168.50.0/24']);
  const c = interfaceChanges(NOTHING, p);
  p.routes[0].prefix = 8;
  p.address = '10.0.0.9';
  assert.equal(c.after, { addressing: { address: '10.0.0.5', prefix: 24, mtu: 1500 }, routes: [r('192.168.50.0/24')], addressing6: null, routes6: [] });
});

test.run();
