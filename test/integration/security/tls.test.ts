// TLS: the SDK over tlsConnect, verification of the server by the client (wrong CA, wrong
// name, self-signed), mutual TLS (no certificate, a certificate from another CA, the right
// one), the TLS listener alone (plain: false), TLS and plain TCP on each other's port,
// remote addresses in the log, certificate reload, and admission on the TLS listener.
// Certificates are made once for this file with the openssl CLI and removed afterwards.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REFUSE_IN_USE } from '../../../protocol/index.js';
import { tcpConnect } from '../../../client-sdk/node/tcp.js';
import { tlsConnect } from '../../../client-sdk/node/tls.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { ConfigError } from '../../../server/src/config/config.js';
import { createServer } from '../../../server/src/server.js';
import { type Harness, RawClient, SdkPeer, SEED_DYNAMIC, equalBytes, extRequest, hex, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { type Pki, Proxy, credsOf, fingerprint, makePki, memoryLogger, newSecret, rawTls, tlsSdk, tlsTo, writeAuth } from '../../support/security-kit.js';

let pki: Pki;
let tmp = '';
let n = 0;
test.before(() => {
  pki = makePki(['127.0.0.1']);
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-tls-'));
});
test.after(() => {
  pki?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const tlsOpts = (extra: Parameters<typeof withServer>[0] = {}) => ({ subnet: '10.2.0.0/24', tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsPort: 0, ...extra });
const mutual = (extra: Parameters<typeof withServer>[0] = {}) => tlsOpts({ tlsCa: pki.ca, ...extra });

/** a -> b and b -> a, byte for byte. */
async function exchange(a: SdkPeer, b: SdkPeer, tag: number): Promise<void> {
  const ab = ipPacket(a.address, b.address, 100 + tag, rng(tag));
  const ba = ipPacket(b.address, a.address, 200 + tag, rng(tag + 100));
  const nb = b.packets.length;
  const na = a.packets.length;
  assert.ok(a.client.send(ab), 'a sends');
  assert.ok(b.client.send(ba), 'b sends');
  await waitFor(() => b.packets.slice(nb).some((x) => equalBytes(x, ab)) && a.packets.slice(na).some((x) => equalBytes(x, ba)), 3000, `exchange ${tag}`);
  assert.ok(equalBytes(b.packets.at(-1)!, ab) && equalBytes(a.packets.at(-1)!, ba), 'byte-exact');
}

/** Starts a TLS SDK client and returns its first 'down' (it must never be ready). */
async function tlsDown(h: Harness, o: Parameters<typeof tlsSdk>[1], opts: Parameters<typeof tlsSdk>[2] = {}) {
  const p = tlsSdk(h, o, opts).start();
  const down = await p.waitState('down', 5000);
  assert.not.ok(p.states.some((s) => s.state === 'ready'), 'never ready');
  return down;
}

const includes = (hay: Buffer[], needle: Uint8Array) => Buffer.concat(hay).includes(Buffer.from(needle));

// ---- server authentication -------------------------------------------------------------------

test('tlsConnect with its defaults (no servername) connects: the SDK client gets ready over TLS', async () => {
  await withServer(tlsOpts(), async (h) => {
    const p = h.sdk({ connect: tlsConnect({ host: '127.0.0.1', port: h.server.tlsPort, ca: pki.caPem }) });
    try {
      p.start();
    } catch (err: any) {
      assert.unreachable(`tlsConnect threw from tls.connect: ${err.code}: ${err.message.split('\n')[0]}`);
    }
    assert.ok((await p.waitState('ready', 5000)).address);
  });
});

test('an SDK client over TLS (right CA) reaches a plain-TCP client through the server, both ways, byte for byte, and the wire shows none of it', async () => {
  await withServer(tlsOpts(), async (h) => {
    assert.ok(h.server.tlsPort > 0 && h.server.tlsPort !== h.server.port, 'a TLS listener beside the plain one');
    const proxy = await Proxy.start(h.server.tlsPort, true);
    h.track(proxy);
    const secure = h.sdk({ connect: tlsTo(proxy.port, { ca: pki.caPem }), name: 'secure' });
    const plain = h.sdk({ name: 'plain' });
    await secure.ready();
    await plain.ready();
    for (let i = 0; i < 5; i++) await exchange(secure, plain, i);
    const big = ipPacket(secure.address, plain.address, 1500, rng(99));
    secure.client.send(big);
    await waitFor(() => plain.packets.some((x) => equalBytes(x, big)), 3000, 'a full-size packet');
    const info = h.server.clients();
    assert.is(info.find((c) => c.name === 'secure')!.transport, 'tls');
    assert.is(info.find((c) => c.name === 'plain')!.transport, 'tcp');
    // Neither the packet nor the client name crossed the wire in clear.
    assert.ok(Buffer.concat(proxy.wire.toServer).length > 1500, 'the proxy saw the traffic');
    assert.not.ok(includes(proxy.wire.toServer, big.subarray(20, 60)), 'packet payload in clear on the wire');
    assert.not.ok(includes(proxy.wire.toServer, Buffer.from('secure')), 'client name in clear on the wire');
  });
});

test('credentials over TLS: accepted, and the secret never crosses the wire in clear', async () => {
  const path = join(tmp, `auth-${++n}.json`);
  const c = { id: 'tls-client', secret: newSecret() };
  await writeAuth(path, [c]);
  await withServer(tlsOpts({ auth: path }), async (h) => {
    const proxy = await Proxy.start(h.server.tlsPort, true);
    h.track(proxy);
    const p = h.sdk({ connect: tlsTo(proxy.port, { ca: pki.caPem }), credentials: credsOf(c) });
    await p.ready();
    assert.is(h.server.clients()[0].client, 'tls-client');
    assert.not.ok(includes(proxy.wire.toServer, Buffer.from(c.secret)), 'secret in clear');
    assert.not.ok(includes(proxy.wire.toServer, Buffer.from(c.id)), 'id in clear');
  });
});

test('wrong CA on the client: the client goes down with a reason naming the certificate problem; no session, no address', async () => {
  const logger = memoryLogger();
  await withServer(tlsOpts({ logger }), async (h) => {
    const cases: Array<[string, Parameters<typeof tlsSdk>[1]]> = [
      ['another CA', { ca: pki.otherCaPem }],
      ['the system roots', {}],
    ];
    for (const [name, o] of cases) {
      const down = await tlsDown(h, o);
      assert.match(describeDown(down), /CERT|certificate|VERIFY|SIGNATURE|issuer/i, `${name}: ${describeDown(down)}`);
      assert.match(describeDown(down), /the server's certificate is signed by a CA that is not trusted \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/, `${name}: ${describeDown(down)}`);
      assert.is(down.code, 0, `${name}: not a refusal code`);
      assert.is(down.reason, 'certificate', `${name}: recognisable as a certificate failure`);
    }
    await sleep(50);
    assert.is(h.sessions, 0);
    assert.is(h.pool.size, 0);
    assert.is(h.metrics.connections, 0, 'never handed to the protocol');
    await waitFor(() => (h.metrics.refusals.tls_handshake ?? 0) === 2, 3000, 'the server to count the failed handshakes', () => h.metrics.refusals);
  });
});

test('a server certificate for another name (or from another CA) is refused by the client', async () => {
  await withServer(tlsOpts(), async (h) => {
    const p = h.sdk({ connect: tlsConnect({ host: '127.0.0.1', port: h.server.tlsPort, ca: pki.caPem, servername: 'vpn.example.com' }) }).start();
    const down = await p.waitState('down', 5000);
    assert.match(describeDown(down), /ALTNAME|altname|name/i, describeDown(down));
    // The reason and the failure name the names the certificate does carry.
    assert.is(describeDown(down), "the server's certificate is not for vpn.example.com: it is for 127.0.0.1, localhost (ERR_TLS_CERT_ALTNAME_INVALID)");
    assert.is(down.reason, 'certificate_name');
    assert.equal(down.names, ['127.0.0.1', 'localhost']);
    assert.is(h.pool.size, 0);
  });
  await withServer(tlsOpts({ tlsCert: pki.otherServer.cert, tlsKey: pki.otherServer.key }), async (h) => {
    const down = await tlsDown(h, { ca: pki.caPem });
    assert.match(describeDown(down), /CERT|certificate|VERIFY|SIGNATURE|issuer/i, describeDown(down));
    assert.is(h.pool.size, 0);
  });
});

// ---- mutual TLS ---------------------------------------------------------------------------------

test('mutual TLS: no client certificate is refused (counted tls_handshake, logged refuse_connection)', async () => {
  const logger = memoryLogger();
  await withServer(mutual({ logger }), async (h) => {
    const r = await rawTls(h.server.tlsPort, { ca: pki.caPem });
    // TLS 1.3: the client may finish its side before the server rejects it; either way no data flows.
    if (r.sock) {
      r.sock.write(SEED_DYNAMIC);
      await waitFor(() => r.closed(), 3000, 'the server to drop the connection');
      assert.is(Buffer.concat(r.received).length, 0, 'no reply');
    }
    await waitFor(() => (h.metrics.refusals.tls_handshake ?? 0) === 1, 3000, 'tls_handshake counted', () => h.metrics.refusals);
    const line = logger.find('refuse_connection')[0];
    assert.ok(line, JSON.stringify(logger.lines));
    assert.is(line.fields.reason, 'tls_handshake');
    assert.match(line.fields.remote, /^127\.0\.0\.1:\d+$/);
    assert.ok(line.fields.detail, 'says why');
    assert.is(h.sessions, 0);
    assert.is(h.pool.size, 0);
  });
});

test('mutual TLS: the SDK client without a certificate goes down with a reason naming the TLS problem (not "address in use")', async () => {
  await withServer(mutual(), async (h) => {
    const down = await tlsDown(h, { ca: pki.caPem });
    assert.is.not(down.code, REFUSE_IN_USE, `reported as a refusal "address in use": ${describeDown(down)}`);
    assert.match(describeDown(down), /CERT|certificate|ALERT|SSL|TLS/i, describeDown(down));
    assert.is(h.pool.size, 0);
  });
});

test('mutual TLS: a certificate signed by another CA is refused; the right one works', async () => {
  await withServer(mutual(), async (h) => {
    const bad = await rawTls(h.server.tlsPort, { ca: pki.caPem, cert: pki.otherClient.certPem, key: pki.otherClient.keyPem });
    if (bad.sock) {
      bad.sock.write(SEED_DYNAMIC);
      await waitFor(() => bad.closed(), 3000, 'the server to drop the connection');
      assert.is(Buffer.concat(bad.received).length, 0);
    }
    await tlsDown(h, { ca: pki.caPem, cert: pki.otherClient.certPem, key: pki.otherClient.keyPem });
    await waitFor(() => (h.metrics.refusals.tls_handshake ?? 0) >= 2, 3000, 'both counted', () => h.metrics.refusals);
    assert.is(h.sessions, 0);
    const good = tlsSdk(h, { ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem });
    const plain = h.sdk();
    await good.ready();
    await plain.ready();
    await exchange(good, plain, 1);
  });
});

// ---- the TLS listener alone -------------------------------------------------------------------

test('plain: false leaves only the TLS listener; a plain-TCP seed request to it gets nothing', async () => {
  const path = join(tmp, `auth-${++n}.json`);
  const c = { id: 'only-tls', secret: newSecret() };
  await writeAuth(path, [c]);
  const logger = memoryLogger();
  await withServer(tlsOpts({ plain: false, auth: path, logger }), async (h) => {
    const bound = h.server.addresses();
    assert.is(bound.length, 1);
    assert.ok(bound[0].tls);
    assert.is(h.server.port, h.server.tlsPort, 'the only port is the TLS one');
    const l = logger.find('listening')[0].fields;
    assert.is(l.addresses, undefined, 'no plain address in the listening line');
    assert.match(l.tls_addresses, /^127\.0\.0\.1:\d+$/);
    assert.is(logger.find('plain_credentials').length, 0, 'no warning: credentials only arrive over TLS');
    // A seed client talking plain TCP to the TLS port.
    const raw = await h.raw();
    raw.write(SEED_DYNAMIC);
    await raw.waitClosed(5000);
    assert.is(raw.received, 0, 'refused the seed way: closed without a byte');
    assert.is(h.pool.size, 0);
    await waitFor(() => (h.metrics.refusals.plain_on_tls_port ?? 0) === 1, 3000, 'plain_on_tls_port counted');
    assert.match(logger.find('refuse_connection')[0].fields.detail, /connect it with --tls \(this server has no plain listener\)/);
    assert.ok((await tlsSdk(h, { ca: pki.caPem }, { credentials: credsOf(c) }).ready()).address);
  });
});

test('--no-plain without TLS is a ConfigError', async () => {
  assert.throws(() => createServer({ plain: false, tun: false }), (e: any) => e instanceof ConfigError && /no-plain/.test(e.message));
  assert.throws(() => createServer({ tlsCert: pki.server.cert, tun: false }), (e: any) => e instanceof ConfigError && /tls-key/.test(e.message));
  assert.throws(() => createServer({ tlsCa: pki.ca, tun: false }), (e: any) => e instanceof ConfigError && /tls-ca/.test(e.message));
});

test('a self-signed server certificate: the client goes down with failure certificate and a reason saying so', async () => {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=svpn-self',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { cwd: tmp, stdio: 'ignore', timeout: 20_000 });
  await withServer(tlsOpts({ tlsCert: join(tmp, 'self.pem'), tlsKey: join(tmp, 'self.key') }), async (h) => {
    const down = await tlsDown(h, { ca: pki.caPem });
    assert.is(describeDown(down), "the server's certificate is self-signed and not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)");
    assert.is(down.reason, 'certificate');
    // Trusting that very certificate is the fix.
    assert.ok((await tlsSdk(h, { ca: readFileSync(join(tmp, 'self.pem')) }).ready(5000)).address);
  });
});

// ---- TLS and plain TCP on each other's port -----------------------------------------------------

test('a TLS client on the plain port: refused as tls_on_plain_port naming the TLS port, answered with a TLS alert; the SDK reports not_tls', async () => {
  const logger = memoryLogger();
  await withServer(tlsOpts({ logger }), async (h) => {
    const { port, tlsPort } = h.server;
    // The client's TLS stack gets an alert, not a bare reset.
    const r = await rawTls(port, { ca: pki.caPem });
    assert.is(r.error?.code, 'ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE', String(r.error));
    const down = await h.sdk({ connect: tlsTo(port, { ca: pki.caPem }) }).start().waitState('down', 5000);
    assert.is(describeDown(down), 'the server does not speak TLS on this port (ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE)');
    assert.is(down.reason, 'not_tls');
    assert.is(down.code, 0);
    await waitFor(() => (h.metrics.refusals.tls_on_plain_port ?? 0) === 2, 3000, 'both refusals counted', () => h.metrics.refusals);
    // One line: refusal lines are rate limited per reason (the next says how many were held back).
    const lines = logger.find('refuse_connection');
    assert.is(lines.length, 1, JSON.stringify(lines));
    assert.is(lines[0].fields.reason, 'tls_on_plain_port');
    assert.is(lines[0].fields.detail, `a TLS client on the plain port ${port}: connect it to the TLS port ${tlsPort}, or drop --tls on the client`);
    assert.match(lines[0].fields.remote, /^127\.0\.0\.1:\d+$/);
    await waitFor(() => logger.find('disconnect').length === 2, 3000, 'the sessions to end');
    assert.equal(logger.find('disconnect').map((l) => [l.fields.reason, l.fields.detail]), [['refused', 'tls_on_plain_port'], ['refused', 'tls_on_plain_port']]);
    assert.is(h.metrics.disconnects.malformed_frame, undefined, 'not reported as a malformed frame');
    assert.is(h.pool.size, 0);
  });
});

test('a TLS client on the plain port of a server without TLS: the refusal says to drop --tls', async () => {
  const logger = memoryLogger();
  await withServer({ logger }, async (h) => {
    const down = await h.sdk({ connect: tlsTo(h.server.port, { ca: pki.caPem }) }).start().waitState('down', 5000);
    assert.is(down.reason, 'not_tls');
    await waitFor(() => logger.find('refuse_connection').length === 1, 3000, 'the refusal');
    assert.is(logger.find('refuse_connection')[0].fields.detail, `a TLS client on the plain port ${h.server.port}: this server has no TLS listener, drop --tls on the client`);
  });
});

test('a plain client on the TLS port: refused as plain_on_tls_port naming the fix, answered with a TLS alert; the SDK reports expects_tls, not a refusal', async () => {
  const logger = memoryLogger();
  await withServer(tlsOpts({ logger }), async (h) => {
    const { port, tlsPort } = h.server;
    const raw = await RawClient.connect(tlsPort);
    h.track(raw);
    raw.write(extRequest(0));
    await raw.waitClosed(5000);
    assert.is(hex(raw.all()), '15 03 03 00 02 02 0a', 'a fatal unexpected_message alert, then the close');
    const down = await h.sdk({ connect: tcpConnect({ host: '127.0.0.1', port: tlsPort }) }).start().waitState('down', 5000);
    assert.is(describeDown(down), 'the server expects TLS on this port');
    assert.is(down.reason, 'expects_tls');
    assert.is(down.code, 0, 'not "a seed server refuses so" (address in use)');
    // A seed device takes whatever one read() returns for its reply: it is refused its own way, by a close.
    const seed = await RawClient.connect(tlsPort);
    h.track(seed);
    seed.write(SEED_DYNAMIC);
    await seed.waitClosed(5000);
    assert.is(seed.received, 0, 'closed without a byte');
    await waitFor(() => (h.metrics.refusals.plain_on_tls_port ?? 0) === 3, 3000, 'the refusals counted', () => h.metrics.refusals);
    const lines = logger.find('refuse_connection');
    assert.is(lines.length, 1, 'rate limited per reason');
    assert.is(lines[0].fields.reason, 'plain_on_tls_port');
    assert.is(lines[0].fields.detail, `a plain TCP client on the TLS port ${tlsPort}: connect it with --tls, or to the plain port ${port}`);
    assert.match(lines[0].fields.remote, /^127\.0\.0\.1:\d+$/);
    assert.is(h.metrics.refusals.tls_handshake, undefined);
    assert.is(h.metrics.connections, 0, 'never handed to the protocol');
  });
});

test('plain bytes that begin like a TLS record on the TLS port are still plain_on_tls_port (by the handshake error)', async () => {
  const logger = memoryLogger();
  await withServer(tlsOpts({ logger }), async (h) => {
    const raw = await RawClient.connect(h.server.tlsPort);
    h.track(raw);
    raw.write(Buffer.from([0x16, 0x00, 0x00, 0x00, 0x10, ...new Array(16).fill(0)])); // record version 0.0: not TLS
    await raw.waitClosed(5000);
    await waitFor(() => logger.find('refuse_connection').length === 1, 3000, 'the refusal');
    assert.is(logger.find('refuse_connection')[0].fields.reason, 'plain_on_tls_port');
  });
});

// ---- remote addresses -------------------------------------------------------------------------

/** Connects to `port`, starts a TLS handshake (a partial ClientHello) unless `bytes` is false, and resets the connection. */
async function resetDuringHandshake(port: number, bytes = true): Promise<number> {
  const sock = net.connect({ host: '127.0.0.1', port });
  sock.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  if (bytes) sock.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03]));
  await sleep(100); // the server has the bytes (the TLS engine has begun)
  const local = sock.localPort!;
  sock.resetAndDestroy();
  return local;
}

test('a client that resets during the TLS handshake (or before sending a byte) is logged with its real address, not undefined:undefined', async () => {
  for (const bytes of [true, false]) {
    const logger = memoryLogger();
    await withServer(tlsOpts({ logger }), async (h) => {
      const local = await resetDuringHandshake(h.server.tlsPort, bytes);
      await waitFor(() => logger.find('refuse_connection').length === 1, 3000, 'the refusal logged', () => logger.lines);
      const l = logger.find('refuse_connection')[0].fields;
      assert.equal([l.remote, l.reason, l.detail], [`127.0.0.1:${local}`, 'tls_handshake', 'ECONNRESET'], `reset ${bytes ? 'during' : 'before'} the handshake`);
    });
  }
});

test('remote addresses are written one way in every line, plain and TLS: IPv4-mapped addresses as IPv4', async () => {
  const logger = memoryLogger();
  // Listening on :: (dual stack), so Node reports IPv4 clients as ::ffff:127.0.0.1.
  const server = createServer({ ...tlsOpts({ logger }), tun: false, host: '::', port: 0, maxPerSource: 0, connRate: 0 });
  try {
    await server.listen();
  } catch (err: any) {
    await server.close();
    console.log(`  (skipped: cannot listen on :: here: ${err.code})`);
    return;
  }
  const peers: SdkPeer[] = [];
  try {
    const { port, tlsPort } = server;
    const sdk = (connect: ReturnType<typeof tcpConnect>) => {
      const p = new SdkPeer(port, { connect });
      peers.push(p);
      return p;
    };
    await sdk(tcpConnect({ host: '127.0.0.1', port })).ready();
    await sdk(tlsTo(tlsPort, { ca: pki.caPem })).ready();
    await resetDuringHandshake(tlsPort);
    await sdk(tlsTo(port, { ca: pki.caPem })).start().waitState('down', 5000);
    await sdk(tcpConnect({ host: '127.0.0.1', port: tlsPort })).start().waitState('down', 5000);
    await waitFor(() => logger.find('refuse_connection').length === 3, 3000, 'three refusals', () => logger.lines);
    const lines = logger.lines.filter((l) => l.fields.remote !== undefined);
    const kinds = new Set(lines.map((l) => `${l.event} ${l.fields.reason ?? l.fields.transport ?? ''}`.trim()));
    for (const k of ['connect tcp', 'connect tls', 'assign', 'disconnect refused', 'refuse_connection plain_on_tls_port', 'refuse_connection tls_handshake', 'refuse_connection tls_on_plain_port'])
      assert.ok(kinds.has(k), `a "${k}" line: ${[...kinds]}`);
    for (const l of lines) assert.match(l.fields.remote, /^127\.0\.0\.1:\d+$/, `${l.event}: ${l.fields.remote}`);
    for (const c of server.clients()) assert.match(c.remote, /^127\.0\.0\.1:\d+$/);
  } finally {
    for (const p of peers) p.close();
    await server.close();
  }
});

// ---- reload ---------------------------------------------------------------------------------

/** The server certificate a new TLS connection sees. */
async function servedFingerprint(port: number): Promise<string> {
  const r = await rawTls(port, { ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem });
  if (!r.sock) throw new Error('TLS connect failed: ' + r.error?.message);
  const fp = r.sock.getPeerCertificate().fingerprint256;
  r.sock.destroy();
  return fp;
}

function certFiles(pair: { cert: string; key: string }): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmp, 'cert-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  copyFileSync(pair.cert, cert);
  copyFileSync(pair.key, key);
  return { cert, key };
}

test('reload() picks up a new server certificate for new connections; an existing TLS session keeps working; mutual TLS stays on', async () => {
  const files = certFiles(pki.server);
  await withServer(mutual({ tlsCert: files.cert, tlsKey: files.key }), async (h) => {
    const port = h.server.tlsPort;
    assert.is(await servedFingerprint(port), fingerprint(pki.server.certPem));
    const old = tlsSdk(h, { ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem });
    const plain = h.sdk();
    await old.ready();
    await plain.ready();
    copyFileSync(pki.server2.cert, files.cert);
    copyFileSync(pki.server2.key, files.key);
    await h.server.reload();
    assert.is(await servedFingerprint(port), fingerprint(pki.server2.certPem), 'new connections see the new certificate');
    await exchange(old, plain, 1);
    const fresh = tlsSdk(h, { ca: pki.caPem, cert: pki.client.certPem, key: pki.client.keyPem });
    await fresh.ready();
    await exchange(old, fresh, 2);
    assert.is(old.states.filter((s) => s.state === 'down').length, 0, 'the old session never dropped');
    // Mutual TLS still required after the reload.
    const down = await tlsDown(h, { ca: pki.caPem });
    assert.ok(down.state === 'down');
    await waitFor(() => (h.metrics.refusals.tls_handshake ?? 0) >= 1, 3000, 'refused after reload');
  });
});

test('reload() with an unusable certificate rejects, logs reload_failed and keeps the old one', async () => {
  const files = certFiles(pki.server);
  const logger = memoryLogger();
  await withServer(tlsOpts({ tlsCert: files.cert, tlsKey: files.key, logger }), async (h) => {
    const port = h.server.tlsPort;
    const old = tlsSdk(h, { ca: pki.caPem });
    await old.ready();
    writeFileSync(files.cert, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    await h.server.reload().then(
      () => assert.unreachable('resolved'),
      (err) => assert.instance(err, ConfigError),
    );
    assert.is(logger.find('reload_failed').length, 1);
    // Key and certificate that do not match.
    copyFileSync(pki.server.cert, files.cert);
    copyFileSync(pki.client.key, files.key);
    await h.server.reload().then(
      () => assert.unreachable('resolved with a mismatched key'),
      (err) => assert.match(err.message, /not usable/),
    );
    rmSync(files.key);
    await h.server.reload().then(
      () => assert.unreachable('resolved with no key file'),
      (err) => assert.match(err.message, /--tls-key .*no such file/),
    );
    assert.is(logger.find('reload_failed').length, 3);
    assert.is(await servedFingerprint(port), fingerprint(pki.server.certPem), 'the old certificate is still served');
    const other = tlsSdk(h, { ca: pki.caPem });
    await other.ready();
    await exchange(old, other, 3);
  });
});

test('reload() with a new certificate and a bad auth file changes nothing: the old certificate stays in force', async () => {
  const files = certFiles(pki.server);
  const path = join(tmp, `auth-${++n}.json`);
  const c = { id: 'x', secret: newSecret() };
  await writeAuth(path, [c]);
  const logger = memoryLogger();
  await withServer(tlsOpts({ tlsCert: files.cert, tlsKey: files.key, auth: path, logger }), async (h) => {
    const port = h.server.tlsPort;
    copyFileSync(pki.server2.cert, files.cert);
    copyFileSync(pki.server2.key, files.key);
    writeFileSync(path, '{ "clients": [ { "id": "x", "secret": "plaintext" } ] }');
    await h.server.reload().then(
      () => assert.unreachable('resolved'),
      (err) => assert.match(err.message, /clients\[0\]/),
    );
    const failed = logger.find('reload_failed')[0];
    assert.match(failed.fields.detail, /previous auth file and certificates stay in force/);
    assert.is(await servedFingerprint(port), fingerprint(pki.server.certPem), 'reload_failed says the certificates stay, but the new one is served');
  });
});

// ---- admission on the TLS listener --------------------------------------------------------------

test('maxPerSource on the TLS listener: the refused connection is counted once, as per_source_limit (not also as a failed handshake)', async () => {
  const logger = memoryLogger();
  await withServer(tlsOpts({ maxPerSource: 2, logger }), async (h) => {
    const a = tlsSdk(h, { ca: pki.caPem });
    const b = tlsSdk(h, { ca: pki.caPem });
    await a.ready();
    await b.ready();
    const r = await rawTls(h.server.tlsPort, { ca: pki.caPem }, 3000);
    assert.ok(r.error, 'the third is refused');
    await sleep(100);
    assert.is(h.metrics.refusals.per_source_limit, 1);
    assert.equal(
      logger.find('refuse_connection').map((l) => l.fields.reason),
      ['per_source_limit'],
      'one refusal, one reason',
    );
    assert.is(h.metrics.refusals.tls_handshake ?? 0, 0, 'counted a second time as tls_handshake');
  });
});

test('idle connections to the TLS listener that never start a handshake are shed by the handshake timeout; a real TLS client works meanwhile', async () => {
  await withServer(tlsOpts({ handshakeTimeout: 1 }), async (h) => {
    const idle: net.Socket[] = [];
    const closed = new Set<net.Socket>();
    for (let i = 0; i < 100; i++) {
      const s = net.connect({ host: '127.0.0.1', port: h.server.tlsPort });
      s.on('error', () => {});
      s.on('close', () => closed.add(s));
      idle.push(s);
      h.track(s);
    }
    const t0 = Date.now();
    const real = tlsSdk(h, { ca: pki.caPem });
    await real.ready();
    const plain = h.sdk();
    await plain.ready();
    await exchange(real, plain, 1);
    await waitFor(() => closed.size === 100, 5000, 'the idle connections to be shed', () => closed.size);
    assert.ok(Date.now() - t0 >= 800, 'after the timeout');
    assert.is(h.sessions, 2, 'they never became sessions');
    assert.is(h.pool.size, 2);
    await waitFor(() => (h.metrics.refusals.tls_handshake ?? 0) === 100, 3000, 'counted', () => h.metrics.refusals);
    await exchange(real, plain, 2);
  });
});

test('a refusal over TLS reaches the client intact (REFUSE_IN_USE for a static address held by another)', async () => {
  await withServer(tlsOpts(), async (h) => {
    await h.sdk({ address: '10.2.0.9' }).ready();
    const down = await tlsDown(h, { ca: pki.caPem }, { address: '10.2.0.9' });
    assert.is(down.code, REFUSE_IN_USE);
    assert.match(describeDown(down), /in use/);
  });
});

test.run();
