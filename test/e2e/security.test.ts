// The real server with TLS (mutual) and an auth file, and real Linux clients with --tls,
// certificates and credentials, in namespaces made here:
//
//        c1 ──198.18.1.0/24── srv ──198.18.2.0/24── c2
//                              │
//                        198.18.3.0/24
//                              │
//                              c3 (the clients that must not get in)
//
// Certificates and secrets are made per run in a temporary directory, removed afterwards.
// The tests run in order and share the lab.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Host, type Proc, until, useLab } from '../support/lab.js';
import { type Pki, authText, makePki, newSecret } from '../support/security-kit.js';

const NAME = 'vpn.test'; // in the server certificate beside the three IP addresses
const CLIENT_ARGS = ['--max-backoff', '2', '--timeout', '2'];

let srv: Host, c1: Host, c2: Host, c3: Host;
let server: Proc;
let client1: Proc, client2: Proc;
let addr1 = '';
let addr2 = '';
let pki: Pki;
let dir = '';
let authFile = '';
const C1 = { id: 'client-1', secret: newSecret() };
const C2 = { id: 'client-2', secret: newSecret() };
const secretFile = (name: string, secret: string) => {
  const f = join(dir, `${name}.secret`);
  writeFileSync(f, secret + '\n');
  chmodSync(f, 0o600);
  return f;
};


/** Client arguments for TLS with the right CA, this client's certificate and credentials. */
function tlsArgs(server: string, id: string, secret: string, extra: string[] = []): string[] {
  return ['-s', server, '--tls', '--ca', pki.ca, '--cert', pki.client.cert, '--key', pki.client.key, '--id', id, '--secret-file', secretFile(id + Math.random().toString(36).slice(2, 6), secret), ...CLIENT_ARGS, ...extra];
}

const { it } = useLab(
  test,
  async (lab) => {
    pki = makePki(['198.18.1.1', '198.18.2.1', '198.18.3.1'], [NAME]);
    dir = mkdtempSync(join(tmpdir(), 'svpn-sec-e2e-'));
    authFile = join(dir, 'auth.json');
    writeFileSync(authFile, await authText([C1, C2]));
    [srv, c1, c2, c3] = lab.star('srv', 'c1', 'c2', 'c3');
  },
  {
    cleanUp: () => {
      pki?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  },
);

it('the server starts with mutual TLS and an auth file', async () => {
  // Every client presents the one test certificate (CN client-1) with its own id: certificates that only admit (--cert-id off; ids in certificates: integration/security/auth-cert.test.ts).
  server = srv.server(['--idle-timeout', '6', '--keepalive', '2', '--tls-cert', pki.server.cert, '--tls-key', pki.server.key, '--tls-ca', pki.ca, '--cert-id', 'off', '--auth', authFile]);
  const l = await server.waitFor('listening');
  assert.match(String(l.tls_addresses), /:2003/);
  assert.is(l.mutual_tls, true);
  assert.is(l.auth, '2 clients');
  await server.waitFor('plain_credentials');
});

it('ping between two clients over TLS with credentials', async () => {
  // --servername: see the next test for the client without it.
  client1 = c1.client('client1', tlsArgs('198.18.1.1', C1.id, C1.secret, ['--servername', NAME]));
  client2 = c2.client('client2', tlsArgs('198.18.2.1', C2.id, C2.secret, ['--servername', NAME]));
  const r1 = await client1.waitFor('ready');
  const r2 = await client2.waitFor('ready');
  addr1 = String(r1.address);
  addr2 = String(r2.address);
  assert.is.not(addr1, addr2);
  assert.ok(await c1.ping(addr2), `c1 -> ${addr2}`);
  assert.ok(await c2.ping(addr1), `c2 -> ${addr1}`);
  const conns = server.lines.filter((l) => l.event === 'connect');
  assert.ok(conns.length >= 2 && conns.every((l) => l.transport === 'tls'), JSON.stringify(conns));
  const assigns = server.lines.filter((l) => l.event === 'assign').map((l) => l.client).sort();
  assert.equal(assigns, [C1.id, C2.id]);
});

it('a client with --tls and no --servername (verifying the IP address it dials) comes up', async () => {
  // Uses c2's credentials from c3: a second session for the same id, on another address.
  const c = c3.client('default-tls', tlsArgs('198.18.3.1', C2.id, C2.secret));
  try {
    const r = await c.waitFor('ready', () => true, 10_000); // (rejects at once if the client exits)
    assert.ok(r.address);
    assert.is(r.data_path, 'js', 'TLS keeps the JavaScript data path');
  } finally {
    await c.stop('SIGTERM');
  }
});

it('a client with a wrong secret exits 3 with auth_refused logged', async () => {
  const c = c3.client('wrong-secret', tlsArgs('198.18.3.1', C1.id, 'not-' + C1.secret, ['--servername', NAME]));
  const refused = await c.waitFor('auth_refused');
  assert.is(refused.id, C1.id);
  assert.match(String(refused.reason), /wrong credentials/);
  const { code } = await c.exitWithin(10_000);
  assert.is(code, 3);
  const r = await server.waitFor('refuse', (l) => l.reason === 'auth_failed');
  assert.is(r.client, C1.id);
  assert.not.ok(c.output.concat(server.output).some((l) => l.includes(C1.secret)), 'the secret is never logged');
});

// A certificate the client cannot verify is a setting to fix, not a passing fault: the client
// says which flag fixes it and exits 3 at once rather than retrying for ever.
it('a client with the wrong CA does not come up, names the fix (--ca) and exits 3 without retrying', async () => {
  const c = c3.client('wrong-ca', ['-s', '198.18.3.1', '--tls', '--ca', pki.otherCa, '--cert', pki.client.cert, '--key', pki.client.key, '--servername', NAME, '--id', C1.id, '--secret-file', secretFile('wrongca', C1.secret), ...CLIENT_ARGS]);
  const rejected = await c.waitFor('tls_certificate_rejected');
  assert.match(String(rejected.reason), /(signed by|chains to) a CA that is not trusted \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN)\)/, String(rejected.reason));
  assert.match(String(rejected.fix), /--ca FILE/);
  const { code } = await c.exitWithin(10_000);
  assert.is(code, 3);
  assert.not.ok(c.lines.some((l) => l.event === 'ready' || l.event === 'down'), 'never ready, and no retry announced');
  await server.waitFor('refuse_connection', (l) => l.reason === 'tls_handshake');
});

it('a client without a certificate (mutual TLS) does not come up and names the TLS problem, not "address in use"', async () => {
  const c = c3.client('no-cert', ['-s', '198.18.3.1', '--tls', '--ca', pki.ca, '--servername', NAME, '-a', '10.0.9.9', '--id', C1.id, '--secret-file', secretFile('nocert', C1.secret), ...CLIENT_ARGS]);
  try {
    const d = await c.waitFor('down');
    assert.is(d.code, undefined, `reported as refusal code ${d.code}: ${d.reason}`);
    assert.match(String(d.reason), /CERT|certificate|ALERT|SSL|TLS/i, String(d.reason));
    assert.not.ok(c.lines.some((l) => l.event === 'address_refused'), 'a TLS failure is not "the address is in use"');
  } finally {
    await c.stop('SIGTERM');
  }
});

it('SIGHUP after removing a client from the auth file disconnects it (credentials_revoked); the other client stays', async () => {
  writeFileSync(authFile, await authText([C1]));
  const from = server.lines.length;
  const from2 = client2.lines.length;
  server.signal('SIGHUP');
  const d = await server.waitFor('disconnect', (l) => l.reason === 'credentials_revoked', 10_000, from);
  assert.is(d.address, addr2);
  await server.waitFor('reloaded', (l) => l.revoked_sessions === 1, 5000, from);
  await client2.waitFor('down', () => true, 10_000, from2);
  await until('the revoked client to be refused on reconnect', () => server.lines.slice(from).some((l) => l.event === 'refuse' && l.client === C2.id && l.reason === 'auth_failed'), 15_000);
  assert.ok(await c1.ping('10.0.0.1'), 'c1 still reaches the server');
  assert.is(server.exitCode, null);
});

it('SIGTERM: clients and server exit 0', async () => {
  assert.is((await client1.stop('SIGTERM')).code, 0);
  assert.is((await client2.stop('SIGTERM')).code, 0);
  assert.is((await server.stop('SIGTERM')).code, 0);
});

test.run();
