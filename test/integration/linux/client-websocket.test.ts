// simplevpn-client over WebSocket, straight to a real simplevpn-server (no proxy: that is
// test/integration/proxy): ws:// with the server's --ws-path on its plain port and wss://
// on its TLS port, each reaching ready and pinging the other across the VPN; a wss server
// whose certificate is not trusted ends the client with exit 3 and the --ca hint; --help
// lists the new flags. Two namespaces, one per client, linked to a hub with the server.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { CLIENT_BIN, type Host, type Proc, nodeFlags, useLab } from '../../support/lab.js';
import { type Pki, makePki } from '../../support/security-kit.js';

test('--help lists --transport, --path, --proxy and --no-proxy, and the URL form of -s', () => {
  const help = execFileSync(process.execPath, [...nodeFlags(CLIENT_BIN), CLIENT_BIN, '--help'], { timeout: 10_000 }).toString();
  for (const flag of ['--transport T', '--path PATH', '--proxy URL', '--no-proxy', 'wss://HOST[:PORT]/PATH', 'https_proxy', 'NO_PROXY']) assert.ok(help.includes(flag), flag);
});

const FAST = ['--max-backoff', '1', '--timeout', '3'];
let hub: Host;
let c1: Host;
let c2: Host;
let pki: Pki;
let server: Proc;
let plainPort = 0;
let tlsPort = 0;

const { it } = useLab(
  test,
  async (lab) => {
    pki = makePki(['198.18.1.1', '198.18.2.1'], ['localhost']);
    [hub, c1, c2] = lab.star('hub', 'c1', 'c2');
    server = hub.server(['--no-tun', '--host', '0.0.0.0', '--port', '0', '--tls-port', '0', '--ws-path', '/vpn', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key]);
    const l = await server.waitFor('listening', () => true, 10_000);
    const port = (s: unknown) => Number(/:(\d+)/.exec(String(s))?.[1]);
    plainPort = port(l.addresses);
    tlsPort = port(l.tls_addresses);
  },
  { skipNote: 'client-websocket: SKIPPING (registered as skipped)', cleanUp: () => pki?.cleanup() },
);

it('a ws client and a wss client reach ready and ping each other', async () => {
  const a = c1.client('ws', ['-s', `ws://198.18.1.1:${plainPort}/vpn`, ...FAST]);
  const b = c2.client('wss', ['-s', '198.18.2.1', '--transport', 'wss', '-p', String(tlsPort), '--path', '/vpn', '--ca', pki.ca, ...FAST]);
  try {
    const ra = await a.waitFor('ready', () => true, 15_000);
    const rb = await b.waitFor('ready', () => true, 15_000);
    assert.ok(await c1.ping(String(rb.address), 3, 3), `ping from c1:\n${a.tail()}\n${b.tail()}`);
    assert.ok(await c2.ping(String(ra.address), 3, 3), 'ping from c2');
  } finally {
    assert.is((await a.stop('SIGTERM')).code, 0);
    assert.is((await b.stop('SIGTERM')).code, 0);
  }
});

it('a wss server certificate from a CA the client does not trust: exit 3 with the --ca hint', async () => {
  const c = c1.client('wss-other-ca', ['-s', `wss://198.18.1.1:${tlsPort}/vpn`, '--ca', pki.otherCa, ...FAST]);
  const t = setTimeout(() => c.signal('SIGKILL'), 15_000);
  const { code } = await c.exited;
  clearTimeout(t);
  assert.is(code, 3, c.tail());
  const l = c.lines.find((x) => x.event === 'tls_certificate_rejected');
  assert.ok(l, c.tail());
  assert.match(String(l!.reason), /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
  assert.match(String(l!.fix), /^give --ca FILE/);
});

test.run();
