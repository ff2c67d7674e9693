// Where leases are recorded, as the options say it: --state, --etcd and their companions,
// checked once by resolveConfig() with messages that name the flag and the fix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, type ServerOptions, resolveConfig } from '../../../../server/src/config/config.js';

const fails = (o: ServerOptions, msg: RegExp) => {
  try {
    resolveConfig(o);
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.match((err as Error).message, msg);
    return;
  }
  assert.unreachable(`accepted ${JSON.stringify(o)}`);
};

test('in memory unless told: no state file, no etcd', () => {
  const c = resolveConfig({});
  assert.is(c.state, null);
  assert.is(c.etcd, null);
});

test('--state FILE', () => {
  assert.is(resolveConfig({ state: '/var/lib/simplevpn/leases.json' }).state, '/var/lib/simplevpn/leases.json');
  fails({ state: 'x.json', etcd: 'http://10.1.0.5:2379' }, /--state and --etcd do not go together/);
});

test('--etcd: URLs (http:// assumed), separated by commas; defaults for the prefix, the TTL, the advertise address and the id', () => {
  const e = resolveConfig({ etcd: '10.1.0.5:2379,http://10.1.0.6:2379/' }).etcd!;
  assert.equal(e.endpoints, ['http://10.1.0.5:2379', 'http://10.1.0.6:2379']);
  assert.is(e.prefix, '/simplevpn/');
  assert.is(e.ttl, 10);
  assert.is(e.advertise, null);
  assert.is(e.id, null);
  assert.equal(resolveConfig({ etcd: ['https://a:2379', 'https://b:2379'], etcdCa: 'ca.pem', etcdCert: 'c.pem', etcdKey: 'k.pem', etcdPrefix: '/vpn-a/', etcdTtl: 30, clusterAdvertise: '10.1.0.11', clusterId: 'vpn-1.dc2' }).etcd, {
    endpoints: ['https://a:2379', 'https://b:2379'],
    ca: 'ca.pem',
    cert: 'c.pem',
    key: 'k.pem',
    prefix: '/vpn-a/',
    ttl: 30,
    advertise: '10.1.0.11',
    id: 'vpn-1.dc2',
  });
});

test('--etcd and its companions: each mistake named, with the fix', () => {
  fails({ etcd: 'ftp://10.1.0.5:2379' }, /--etcd must be etcd client URLs like http:\/\/10\.1\.0\.5:2379/);
  fails({ etcd: 'http://10.1.0.5:2379/v3' }, /--etcd must be etcd client URLs/);
  fails({ etcd: 'https://a:2379,http://b:2379' }, /every endpoint with https:\/\/ or every one with http:\/\//);
  fails({ etcd: 'http://a:2379', etcdCa: 'ca.pem' }, /are for TLS: give the --etcd endpoints as https:\/\//);
  fails({ etcd: 'https://a:2379', etcdCert: 'c.pem' }, /--etcd-cert and --etcd-key go together/);
  fails({ etcdPrefix: '/x/' }, /--etcd-prefix goes with --etcd/);
  fails({ etcdCa: 'ca.pem', clusterAdvertise: '10.1.0.1' }, /--etcd-ca and --cluster-advertise go with --etcd/);
  fails({ etcd: 'a:2379', etcdPrefix: '/simplevpn' }, /--etcd-prefix must .* end with \//);
  fails({ etcd: 'a:2379', etcdTtl: 1 }, /--etcd-ttl must be a whole number from 2 to 3600/);
  fails({ etcd: 'a:2379', clusterAdvertise: 'server-1' }, /--cluster-advertise must be an IPv4 address/);
  fails({ etcd: 'a:2379', clusterId: 'a b' }, /--cluster-id must be 1 to 64/);
});

test.run();
