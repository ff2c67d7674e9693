// Mutual TLS bound to identity (server/src/control/auth-cert.ts, admission.ts): with --auth
// and --tls-ca, a client certificate's subject CN is the client's auth id. The certificate
// alone authenticates; one issued for alice cannot claim bob's id, even with bob's secret;
// one naming no id in the file is refused; --cert-id off restores certificates that only
// admit to the TLS port. Every refusal has its code (11) and a log line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REFUSE_AUTH_REQUIRED, REFUSE_IDENTITY } from '../../../protocol/index.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { nodeWebSocketConnect } from '../../../client-sdk/node/websocket.js';
import { withServer } from '../../support/server-net.js';
import { type CertPair, type Pki, type TestClient, makeClientCert, makePki, memoryLogger, newSecret, tlsSdk, writeAuth } from '../../support/security-kit.js';

const ALICE: TestClient = { id: 'alice', secret: newSecret(), address: '10.7.0.5' };
const BOB: TestClient = { id: 'bob', secret: newSecret() };
let tmp = '';
let pki: Pki;
let aliceCert: CertPair;
let authFile = '';

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-cert-'));
  pki = makePki();
  aliceCert = makeClientCert(pki, 'alice', 'alice');
  authFile = await writeAuth(join(tmp, 'auth.json'), [ALICE, BOB]);
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  pki?.cleanup();
});

const mutual = (extra: object = {}) => ({ subnet: '10.7.0.0/24', auth: authFile, tlsCert: pki.server.cert, tlsKey: pki.server.key, tlsCa: pki.ca, tlsPort: 0, ...extra });
const as = (c: CertPair) => ({ ca: pki.caPem, cert: c.certPem, key: c.keyPem });

test('a certificate alone authenticates: no secret, the id its CN names, that id\'s fixed address', async () => {
  await withServer(mutual(), async (h) => {
    const info = await tlsSdk(h, as(aliceCert)).ready(8000);
    assert.is(info.address, '10.7.0.5', "alice's fixed address");
    assert.is(h.server.clients().find((c) => c.address === info.address)!.client, 'alice');
    // Naming its own id as well is fine.
    const named = await tlsSdk(h, as(makeClientCert(pki, 'bob', 'bob')), { credentials: { id: 'bob' } }).ready(8000);
    assert.is(h.server.clients().find((c) => c.address === named.address)!.client, 'bob');
  });
});

test("a certificate for alice claiming bob's id, even with bob's secret, is refused with code 11 and logged", async () => {
  const logger = memoryLogger();
  await withServer(mutual({ logger }), async (h) => {
    const down = await tlsSdk(h, as(aliceCert), { credentials: { id: 'bob', secret: BOB.secret } }).start().waitState('down', 8000);
    assert.is(down.code, REFUSE_IDENTITY);
    assert.match(describeDown(down), /client certificate is for "alice", not for "bob"/);
    const line = logger.find('refuse').find((l) => l.fields.reason === 'certificate_id_mismatch');
    assert.ok(line, JSON.stringify(logger.lines));
    assert.is(line!.fields.client, 'bob');
    assert.is(h.metrics.refusals.certificate_id_mismatch, 1);
    assert.is(h.server.clients().filter((c) => c.client === 'bob').length, 0);
  });
});

test('a certificate whose CN is no id in the auth file is refused (code 11), whatever credentials come with it', async () => {
  const logger = memoryLogger();
  await withServer(mutual({ logger }), async (h) => {
    // pki.client is CN client-1.
    const down = await tlsSdk(h, as(pki.client), { credentials: { id: 'alice', secret: ALICE.secret } }).start().waitState('down', 8000);
    assert.is(down.code, REFUSE_IDENTITY);
    assert.match(down.detail, /names "client-1", which is not an id in the auth file/);
    assert.ok(logger.find('refuse').some((l) => l.fields.reason === 'certificate_unknown_id'));
  });
});

test('over wss too: the certificate of the TLS connection under the WebSocket names the id', async () => {
  await withServer(mutual(), async (h) => {
    const wss = () => nodeWebSocketConnect({ url: `wss://127.0.0.1:${h.server.tlsPort}/`, ...as(aliceCert), servername: 'localhost' });
    const connect = wss();
    const info = await h.sdk({ connect }).ready(8000);
    const c = h.server.clients().find((x) => x.address === info.address)!;
    assert.equal([c.client, c.transport], ['alice', 'wss']);
    const down = await h.sdk({ connect: wss(), credentials: { id: 'bob', secret: BOB.secret } }).start().waitState('down', 8000);
    assert.is(down.code, REFUSE_IDENTITY);
  });
});

test('--cert-id off: the certificate only admits to the TLS port; credentials are required as without it', async () => {
  await withServer(mutual({ certId: 'off' }), async (h) => {
    const down = await tlsSdk(h, as(aliceCert)).start().waitState('down', 8000);
    assert.is(down.code, REFUSE_AUTH_REQUIRED);
    const ok = await tlsSdk(h, as(aliceCert), { credentials: { id: 'bob', secret: BOB.secret } }).ready(8000);
    assert.is(h.server.clients().find((c) => c.address === ok.address)!.client, 'bob');
  });
});

test('removing the id from the auth file (SIGHUP) ends the session its certificate opened', async () => {
  const file = await writeAuth(join(tmp, 'reload.json'), [ALICE, BOB]);
  await withServer(mutual({ auth: file }), async (h) => {
    const p = tlsSdk(h, as(aliceCert));
    await p.ready(8000);
    await writeAuth(file, [BOB]);
    await h.server.reload();
    await p.waitState('down', 8000);
    assert.is(h.server.clients().filter((c) => c.client === 'alice').length, 0);
  });
});

test.run();
