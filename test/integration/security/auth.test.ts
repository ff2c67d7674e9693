// Client credentials: the auth file and every way it can be wrong (through the API and the
// CLI), secret hashes (hashSecret and simplevpn-server --hash-secret), what a server that
// requires credentials grants and refuses, and fixed addresses.
import { test } from 'uvu';
import { runCli } from '../../support/server-cli.js';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REFUSAL, KIND_REPLY, REFUSE_AUTH_FAILED, REFUSE_AUTH_REQUIRED, REFUSE_EXHAUSTED, REFUSE_NOT_ALLOWED, T_CLIENT, ascii, credentials, extKind, readRefusal } from '../../../protocol/index.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { Authenticator, hashSecret, parseAuthFile } from '../../../server/src/control/auth.js';
import { ConfigError } from '../../../server/src/config/config.js';
import { createServer } from '../../../server/src/server.js';
import { SEED_DYNAMIC, ip, ipPacket, seedStatic, waitFor, withServer } from '../../support/server-net.js';
import { type TestClient, credsOf, memoryLogger, newSecret, rawRequest, replyAddress, writeAuth } from '../../support/security-kit.js';

let tmp = '';
let n = 0;
const file = (text: string) => {
  const f = join(tmp, `auth-${++n}.json`);
  writeFileSync(f, text);
  return f;
};

const ALICE: TestClient = { id: 'alice', secret: newSecret() };
const BOB: TestClient = { id: 'bob', secret: newSecret() };
const FIXED: TestClient = { id: 'sensor-1', secret: newSecret(), address: '10.7.0.3' };
let H = ''; // a valid hash

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-auth-'));
  H = await hashSecret('correct horse battery staple');
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** Runs the CLI to completion (bounded), with `input` (or nothing) on stdin. */
const run = (args: string[], input?: string, ms = 30_000) => runCli(args, ms, input ?? '');

// ---- the auth file: every kind of bad entry --------------------------------------------------

/** Bad auth files and what the error must say (always naming the entry when there is one). */
function badFiles(): Array<{ name: string; text: string; re: RegExp; secret?: string }> {
  const e = (clients: unknown[]) => JSON.stringify({ clients });
  return [
    { name: 'not JSON', text: '{ "clients": [', re: /not valid JSON/ },
    { name: 'no clients array', text: '{}', re: /"clients" array/ },
    { name: 'clients not an array', text: '{ "clients": { "id": "a" } }', re: /"clients" array/ },
    { name: 'top level an array', text: '[]', re: /"clients" array/ },
    { name: 'entry not an object', text: e(['alice']), re: /clients\[0\]: expected an object/ },
    { name: 'missing id', text: e([{ secret: H }]), re: /clients\[0\]: "id" must be/ },
    { name: 'id with a space', text: e([{ id: 'al ice', secret: H }]), re: /clients\[0\] \(id "al ice"\): "id" must be/ },
    { name: 'id too long', text: e([{ id: 'x'.repeat(65), secret: H }]), re: /clients\[0\] .*"id" must be 1 to 64/ },
    { name: 'id empty', text: e([{ id: '', secret: H }]), re: /clients\[0\] .*"id" must be/ },
    { name: 'duplicate id', text: e([{ id: 'a', secret: H }, { id: 'b', secret: H }, { id: 'a', secret: H }]), re: /clients\[2\] \(id "a"\): id "a" appears twice/ },
    { name: 'plaintext secret', text: e([{ id: 'a', secret: H }, { id: 'b', secret: 'hunter2-plain-secret' }]), re: /clients\[1\] \(id "b"\): "secret" must be a hash .*never the secret itself/, secret: 'hunter2-plain-secret' },
    { name: 'secret missing', text: e([{ id: 'a' }]), re: /clients\[0\] \(id "a"\): "secret" must be a hash/ },
    { name: 'hash with N not a power of two', text: e([{ id: 'a', secret: H.replace(/^scram\$4096\$/, 'scram$3000$') }]), re: /clients\[0\] \(id "a"\): "secret" must be a hash/ },
    { name: 'scram key not 32 bytes', text: e([{ id: 'a', secret: H.slice(0, -2) }]), re: /clients\[0\] \(id "a"\): "secret" must be a hash/ },
    { name: 'hash with a short salt', text: e([{ id: 'a', secret: 'scrypt$4096$8$1$AAAA$' + 'A'.repeat(43) }]), re: /clients\[0\] \(id "a"\): "secret" must be a hash/ },
    { name: 'address not IPv4 (text)', text: e([{ id: 'a', secret: H, address: '10.7.0' }]), re: /clients\[0\] \(id "a"\): "address" must be an IPv4 address, got "10\.7\.0"/ },
    { name: 'address not IPv4 (number)', text: e([{ id: 'a', secret: H, address: 168230915 }]), re: /clients\[0\] \(id "a"\): "address" must be an IPv4 address, got 168230915/ },
    { name: 'address 0.0.0.0', text: e([{ id: 'a', secret: H, address: '0.0.0.0' }]), re: /clients\[0\] \(id "a"\): "address" must be an IPv4 address/ },
    { name: 'address outside the subnet', text: e([{ id: 'a', secret: H }, { id: 'b', secret: H, address: '192.168.1.5' }]), re: /clients\[1\] \(id "b"\): address 192\.168\.1\.5 is outside the subnet 10\.7\.0\.0\/24/ },
    { name: 'address = network', text: e([{ id: 'a', secret: H, address: '10.7.0.0' }]), re: /clients\[0\] \(id "a"\): address 10\.7\.0\.0 is reserved/ },
    { name: 'address = broadcast', text: e([{ id: 'a', secret: H, address: '10.7.0.255' }]), re: /clients\[0\] \(id "a"\): address 10\.7\.0\.255 is reserved/ },
    { name: "address = the server's own", text: e([{ id: 'a', secret: H, address: '10.7.0.1' }]), re: /clients\[0\] \(id "a"\): address 10\.7\.0\.1 is reserved/ },
    { name: 'address fixed twice', text: e([{ id: 'a', secret: H, address: '10.7.0.9' }, { id: 'b', secret: H, address: '10.7.0.9' }]), re: /clients\[1\] \(id "b"\): address 10\.7\.0\.9 is already fixed for "a"/ },
    { name: 'unknown field', text: e([{ id: 'a', secret: H, adress: '10.7.0.9' }]), re: /clients\[0\] \(id "a"\): unknown field "adress"/ },
  ];
}

test('createServer({auth}).listen(): every kind of bad entry rejects with a ConfigError naming the file and the entry', async () => {
  const failures: string[] = [];
  for (const c of badFiles()) {
    const path = file(c.text);
    const server = createServer({ tun: false, host: '127.0.0.1', port: 0, subnet: '10.7.0.0/24', auth: path });
    try {
      await server.listen();
      failures.push(`${c.name}: listen() resolved`);
    } catch (err: any) {
      if (!(err instanceof ConfigError)) failures.push(`${c.name}: not a ConfigError: ${err}`);
      else if (!c.re.test(err.message)) failures.push(`${c.name}: message ${JSON.stringify(err.message)} does not match ${c.re}`);
      else if (!err.message.startsWith(`--auth ${path}: `)) failures.push(`${c.name}: message does not start with "--auth ${path}: ": ${err.message}`);
      else if (c.secret && err.message.includes(c.secret)) failures.push(`${c.name}: the message repeats the plaintext secret`);
    } finally {
      await server.close();
    }
    assert.is(server.addresses().length, 0, `${c.name}: no listener left open`);
  }
  assert.equal(failures, [], failures.join('\n'));
});

test('createServer({auth}) with a missing file rejects with a ConfigError saying so', async () => {
  const server = createServer({ tun: false, host: '127.0.0.1', port: 0, auth: join(tmp, 'nope.json') });
  try {
    await server.listen().then(
      () => assert.unreachable('listen() resolved'),
      (err) => {
        assert.instance(err, ConfigError);
        assert.match(err.message, /--auth .*nope\.json.*no such file/);
      },
    );
  } finally {
    await server.close();
  }
});

test('the CLI exits 2 at start with the message naming the entry, for every kind of bad entry', async () => {
  const cases = badFiles();
  const results = await Promise.all(
    cases.map(async (c) => ({ c, r: await run(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--subnet', '10.7.0.0/24', '--auth', file(c.text)]) })),
  );
  const failures: string[] = [];
  for (const { c, r } of results) {
    if (r.code !== 2) failures.push(`${c.name}: exit ${r.code}: ${r.stderr}`);
    // (A log line "stopped" may precede it: the server is closed before the usage message.)
    else if (!/^simplevpn-server: --auth /m.test(r.stderr)) failures.push(`${c.name}: ${r.stderr}`);
    else if (!c.re.test(r.stderr)) failures.push(`${c.name}: ${JSON.stringify(r.stderr)} does not match ${c.re}`);
    else if (c.secret && r.stderr.includes(c.secret)) failures.push(`${c.name}: stderr repeats the plaintext secret`);
  }
  assert.equal(failures, [], failures.join('\n'));
  const missing = await run(['--no-tun', '--host', '127.0.0.1', '--port', '0', '--auth', join(tmp, 'missing.json')]);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /--auth .*missing\.json: no such file/);
});

// ---- hashes ----------------------------------------------------------------------------------

test('hashSecret: salted scram strings (scrypt, then StoredKey) that verify the right secret and nothing else', async () => {
  const a = await hashSecret('s3cret-s3cret');
  const b = await hashSecret('s3cret-s3cret');
  assert.match(a, /^scram\$4096\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  assert.is.not(a, b, 'salted: two hashes of one secret differ');
  const entries = parseAuthFile(JSON.stringify({ clients: [{ id: 'a', secret: a }, { id: 'b', secret: b }] }), () => null);
  const auth = new Authenticator(entries);
  assert.is((await auth.verify('a', ascii('s3cret-s3cret')))?.id, 'a');
  assert.is((await auth.verify('b', ascii('s3cret-s3cret')))?.id, 'b');
  assert.is(await auth.verify('a', ascii('s3cret-s3creT')), null, 'one character off');
  assert.is(await auth.verify('a', ascii('s3cret-s3cret ')), null, 'one character more');
  assert.is(await auth.verify('a', new Uint8Array(0)), null, 'empty proof');
  assert.is(await auth.verify('nobody', ascii('s3cret-s3cret')), null, 'unknown id');
  // The cached path (same proof again) still refuses a wrong one.
  assert.is((await auth.verify('a', ascii('s3cret-s3cret')))?.id, 'a');
  assert.is(await auth.verify('a', ascii('wrong-wrong')), null);
  assert.is(auth.pending, 0);
});

test('a check in flight when the file is reloaded unchanged still succeeds (a SIGHUP must not fail a correct login)', async () => {
  const text = JSON.stringify({ clients: [{ id: 'a', secret: H }] });
  const auth = new Authenticator(parseAuthFile(text, () => null));
  const inFlight = auth.verify('a', ascii('correct horse battery staple'));
  // The same file read again, as reload() does on SIGHUP while this client is logging in.
  const changed = auth.replace(parseAuthFile(text, () => null));
  assert.is(changed.size, 0, 'nothing changed');
  const entry = await inFlight;
  assert.ok(entry !== null, 'the right secret, checked across an unchanged reload, was refused');
});

test('simplevpn-server --hash-secret reads stdin and prints a hash that works in an auth file', async () => {
  const secret = 'a-secret-from-stdin-' + newSecret();
  const r = await run(['--hash-secret'], secret + '\n');
  assert.is(r.code, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(r.stdout, /^scram\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+\n$/);
  assert.not.ok(r.stdout.includes(secret) || r.stderr.includes(secret), 'the secret is not echoed');
  const path = file(JSON.stringify({ clients: [{ id: 'cli-made', secret: hash }] }));
  await withServer({ subnet: '10.7.0.0/24', auth: path }, async (h) => {
    const ok = await h.sdk({ credentials: { id: 'cli-made', secret } }).ready();
    assert.match(ok.address!, /^10\.7\.0\./);
    const bad = await h.sdk({ credentials: { id: 'cli-made', secret: secret + 'x' } }).start().waitState('down');
    assert.is(bad.code, REFUSE_AUTH_FAILED);
  });
  // Without a trailing newline, and with CRLF, the same secret.
  for (const input of [secret, secret + '\r\n']) {
    const again = await run(['--hash-secret'], input);
    assert.is(again.code, 0);
    const auth = new Authenticator(parseAuthFile(JSON.stringify({ clients: [{ id: 'x', secret: again.stdout.trim() }] }), () => null));
    assert.ok(await auth.verify('x', ascii(secret)), JSON.stringify(input.slice(-2)));
  }
});

test('--hash-secret refuses short, non-ASCII, over-long and empty secrets with exit 2', async () => {
  const cases: Array<[string, string, RegExp]> = [
    ['short', 'short\n', /at least 8/],
    ['empty', '', /at least 8/],
    ['non-ASCII', 'pässwörter-lang\n', /ASCII/],
    ['control character', 'abc\tdefghij\n', /ASCII/],
    ['over 255', 'x'.repeat(256) + '\n', /at most 255/],
  ];
  const results = await Promise.all(cases.map(async ([name, input, re]) => ({ name, re, r: await run(['--hash-secret'], input) })));
  for (const { name, re, r } of results) {
    assert.is(r.code, 2, `${name}: exit ${r.code}, stdout ${r.stdout}`);
    assert.match(r.stderr, re, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /^simplevpn-server: --hash-secret/);
    assert.is(r.stdout, '', `${name}: nothing on stdout`);
  }
});

// ---- a server that requires credentials ------------------------------------------------------

async function withAuth(fn: Parameters<typeof withServer>[1], opts: Parameters<typeof withServer>[0] = {}, clients = [ALICE, BOB, FIXED]) {
  const path = join(tmp, `server-${++n}.json`);
  await writeAuth(path, clients);
  await withServer({ subnet: '10.7.0.0/24', auth: path, ...opts }, fn);
}

test('the right credentials: ready, and the server records the client id', async () => {
  await withAuth(async (h) => {
    const assigns: any[] = [];
    h.server.on('assign', (e) => assigns.push(e));
    const info = await h.sdk({ credentials: credsOf(ALICE), name: 'laptop' }).ready();
    assert.match(info.address!, /^10\.7\.0\./);
    const c = h.server.clients().find((x) => x.address === info.address)!;
    assert.is(c.client, 'alice');
    assert.is(c.name, 'laptop');
    assert.is(assigns[0].client, 'alice');
    assert.is(h.metrics.refusals.auth_failed ?? 0, 0);
  });
});

test('a wrong secret: REFUSE_AUTH_FAILED with text, counted as auth_failed, logged with the id', async () => {
  const logger = memoryLogger();
  await withAuth(
    async (h) => {
      const p = h.sdk({ credentials: { id: 'alice', secret: ALICE.secret + '0' } }).start();
      const down = await p.waitState('down');
      assert.is(down.code, REFUSE_AUTH_FAILED);
      assert.match(describeDown(down), /^refused by server: .*wrong credentials.*alice/);
      assert.not.ok(p.states.some((s) => s.state === 'ready'));
      assert.is(h.metrics.refusals.auth_failed, 1);
      const line = logger.find('refuse').find((l) => l.fields.reason === 'auth_failed');
      assert.ok(line, 'a refuse line: ' + JSON.stringify(logger.lines));
      assert.is(line!.level, 'warn');
      assert.is(line!.fields.client, 'alice');
      assert.not.ok(JSON.stringify(logger.lines).includes(ALICE.secret), 'the secret is never logged');
      await waitFor(() => h.sessions === 0, 3000, 'the refused session to end');
      assert.is(h.pool.size, 0);
    },
    { logger },
  );
});

test('an unknown id is refused exactly like a wrong secret (nothing tells which ids exist)', async () => {
  await withAuth(async (h) => {
    const wrong = await h.sdk({ credentials: { id: 'alice', secret: 'not-the-secret' } }).start().waitState('down');
    const unknown = await h.sdk({ credentials: { id: 'mallory', secret: 'not-the-secret' } }).start().waitState('down');
    assert.is(unknown.code, REFUSE_AUTH_FAILED);
    assert.is(unknown.code, wrong.code);
    assert.is(describeDown(unknown).replace('mallory', 'ID'), describeDown(wrong).replace('alice', 'ID'));
    assert.is(h.metrics.refusals.auth_failed, 2);
  });
});

test('no credentials: REFUSE_AUTH_REQUIRED (an id without a proof is challenged: auth-challenge.test.ts)', async () => {
  await withAuth(async (h) => {
    const none = await h.sdk().start().waitState('down');
    assert.is(none.code, REFUSE_AUTH_REQUIRED);
    assert.match(describeDown(none), /credentials/);
    const c = await h.raw();
    const f = await rawRequest(c, 0, [[T_CLIENT, ascii('no-id')]]);
    assert.ok(f && extKind(f) === KIND_REFUSAL, 'an extension refusal');
    assert.is(readRefusal(f!).code, REFUSE_AUTH_REQUIRED);
    assert.is(h.metrics.refusals.auth_required, 2);
  });
});

test('a seed-format request is closed with no reply, counted as auth_required', async () => {
  const logger = memoryLogger();
  await withAuth(
    async (h) => {
      for (const req of [SEED_DYNAMIC, seedStatic(ip('10.7.0.20'))]) {
        const c = await h.raw();
        c.write(req);
        await c.waitClosed();
        assert.is(c.received, 0, 'not one byte');
      }
      assert.is(h.metrics.refusals.auth_required, 2);
      assert.is(h.pool.size, 0);
      const lines = logger.find('refuse').filter((l) => l.fields.reason === 'auth_required');
      assert.is(lines.length, 2);
      assert.is(lines[0].fields.protocol, 'seed');
    },
    { logger },
  );
});

test('a fixed address: its client gets it on a dynamic request, and is refused REFUSE_NOT_ALLOWED for another', async () => {
  await withAuth(async (h) => {
    const assigns: any[] = [];
    h.server.on('assign', (e) => assigns.push(e));
    const other = await h.sdk({ credentials: credsOf(FIXED), address: '10.7.0.40' }).start().waitState('down');
    assert.is(other.code, REFUSE_NOT_ALLOWED);
    assert.match(describeDown(other), /10\.7\.0\.3/);
    assert.is(h.metrics.refusals.address_not_allowed, 1);
    const info = await h.sdk({ credentials: credsOf(FIXED) }).ready();
    assert.is(info.address, '10.7.0.3');
    assert.is(assigns.at(-1).mode, 'fixed');
    // Asking for its own address by name is fine too (another connection, same client).
    const c = await h.raw();
    h.sessionAt(ip('10.7.0.3'))!.end('client_closed', 'test');
    const f = await rawRequest(c, ip('10.7.0.3'), credentials(FIXED.id, FIXED.secret));
    assert.is(extKind(f!), KIND_REPLY);
    assert.is(replyAddress(f!), ip('10.7.0.3'));
  });
});

test('no other client can take a fixed address, whether its owner is online or not', async () => {
  await withAuth(async (h) => {
    const c1 = await h.raw();
    const f1 = await rawRequest(c1, ip('10.7.0.3'), credentials(ALICE.id, ALICE.secret));
    assert.is(extKind(f1!), KIND_REFUSAL);
    assert.is(readRefusal(f1!).code, REFUSE_NOT_ALLOWED, 'owner offline');
    const owner = h.sdk({ credentials: credsOf(FIXED) });
    assert.is((await owner.ready()).address, '10.7.0.3');
    const c2 = await h.raw();
    const f2 = await rawRequest(c2, ip('10.7.0.3'), credentials(BOB.id, BOB.secret));
    assert.is(readRefusal(f2!).code, REFUSE_NOT_ALLOWED, 'owner online');
    assert.is(owner.state.state, 'ready', 'the owner keeps it');
    assert.is(h.clientAt(ip('10.7.0.3'))!.authId, 'sensor-1');
  });
});

test('dynamic allocation never hands out a fixed address, even when the subnet runs out', async () => {
  // 10.7.0.0/29: .1 is the server, .2-.6 assignable; .3 is fixed for sensor-1.
  await withAuth(
    async (h) => {
      const got: string[] = [];
      for (let i = 0; i < 4; i++) got.push((await h.sdk({ credentials: credsOf(i % 2 ? ALICE : BOB) }).ready()).address!);
      assert.equal(got.sort(), ['10.7.0.2', '10.7.0.4', '10.7.0.5', '10.7.0.6']);
      const full = await h.sdk({ credentials: credsOf(ALICE) }).start().waitState('down');
      assert.is(full.code, REFUSE_EXHAUSTED);
      assert.not.ok(h.pool.has(ip('10.7.0.3')), 'the fixed address is still free');
      assert.is(h.pool.free, 0);
      assert.is((await h.sdk({ credentials: credsOf(FIXED) }).ready()).address, '10.7.0.3', 'its owner still gets it');
    },
    { subnet: '10.7.0.0/29' },
  );
});

test('the listening event counts the clients, and a warning says credentials may arrive in clear on the plain listener', async () => {
  const logger = memoryLogger();
  const path = join(tmp, `warn-${++n}.json`);
  await writeAuth(path, [ALICE, BOB]);
  await withServer({ subnet: '10.7.0.0/24', auth: path, logger }, async () => {
    const l = logger.find('listening')[0];
    assert.is(l.fields.auth, '2 clients');
    const w = logger.find('plain_credentials');
    assert.is(w.length, 1);
    assert.is(w[0].level, 'warn');
    assert.match(w[0].fields.detail, /clear/);
  });
  const quiet = memoryLogger();
  await withServer({ logger: quiet }, async () => {
    assert.is(quiet.find('plain_credentials').length, 0, 'no auth: no warning');
    assert.is(quiet.find('listening')[0].fields.auth, 'none');
  });
});

test('credentials take effect on the request only: data before a granted request is dropped as unassigned', async () => {
  await withAuth(async (h) => {
    const peer = await h.sdk({ credentials: credsOf(ALICE) }).ready();
    const c = await h.raw();
    c.write(ipPacket(ip('10.7.0.99'), ip(peer.address!), 60));
    await waitFor(() => h.metrics.drops.unassigned === 1, 3000, 'the unassigned drop');
    const f = await rawRequest(c, 0, credentials('alice', 'nope'));
    assert.is(readRefusal(f!).code, REFUSE_AUTH_FAILED);
    assert.is(h.metrics.rxPackets, 0);
  });
});

test.run();
