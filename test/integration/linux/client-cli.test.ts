// simplevpn-client (dist/bin/simplevpn-client.js) as a child process: the argument checks
// it shares with simplevpn-server (a negative number after a flag is that flag's value, for
// both CLIs), and how it ends when retrying cannot help (exit 3 with one line saying what to
// fix, no retry announced) or says why it cannot connect when retrying can.
//
// The runs that need a tun device run as root inside a throwaway network namespace with only
// loopback in it (test/support/lab.ts), beside a server CLI in the same namespace: no device,
// address or packet reaches the host's network. Without root, /dev/net/tun, iproute2 or the
// built binding those tests are registered as skipped and the reason is printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_BIN, type Host, type Proc, SERVER_BIN, nodeFlags, useLab } from '../../support/lab.js';
import { type Pki, makePki } from '../../support/security-kit.js';

/** Runs a CLI to completion (bounded). */
function run(bin: string, args: string[], ms = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags(bin), bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')}: still running after ${ms} ms; stderr: ${stderr}`));
    }, ms);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---- arguments shared by both CLIs -----------------------------------------------------------

async function usageError(bin: string, args: string[], message: string): Promise<void> {
  const r = await run(bin, args);
  assert.is(r.code, 2, `${args.join(' ')}: exit status (stderr: ${r.stderr})`);
  assert.ok(r.stderr.includes(message), `${args.join(' ')}: "${message}" in ${JSON.stringify(r.stderr)}`);
  assert.not.ok(/unknown option/.test(r.stderr), `${args.join(' ')}: ${r.stderr}`);
}

test('client: a negative number after a flag is its value, so the range check reports it (--keepalive -1, --mtu -5, -p -1)', async () => {
  await usageError(CLIENT_BIN, ['-s', '127.0.0.1', '--keepalive', '-1'], '--keepalive must be a number of seconds from 1 to 65535, got "-1"');
  await usageError(CLIENT_BIN, ['-s', '127.0.0.1', '--mtu', '-5'], '--mtu must be a whole number from 576 to 65535, got "-5"');
  await usageError(CLIENT_BIN, ['-s', '127.0.0.1', '-p', '-1'], '--port must be from 1 to 65535, got "-1"');
  await usageError(CLIENT_BIN, ['-s', '127.0.0.1', '--port', '-1'], '--port must be from 1 to 65535, got "-1"');
  await usageError(CLIENT_BIN, ['-s', '127.0.0.1', '--timeout', '-2.5'], '--timeout must be a number of seconds from 1 to 3600, got "-2.5"');
});

test('server: a negative number after a flag is its value too (--mtu -5, --port -1, -p -1, --keepalive -1)', async () => {
  await usageError(SERVER_BIN, ['--no-tun', '--mtu', '-5'], '--mtu must be a whole number from 576 to 65535, got "-5"');
  await usageError(SERVER_BIN, ['--no-tun', '--port', '-1'], '--port must be a whole number from 0 to 65535, got "-1"');
  await usageError(SERVER_BIN, ['--no-tun', '-p', '-1'], '--port must be a whole number from 0 to 65535, got "-1"');
  await usageError(SERVER_BIN, ['--no-tun', '--keepalive', '-1'], '--keepalive must be a whole number from 1 to 65535, got "-1"');
});

test('a negative number after a flag that takes no value is still an unknown option, for both CLIs', async () => {
  const client = await run(CLIENT_BIN, ['-s', '127.0.0.1', '--tls', '-1']);
  assert.is(client.code, 2);
  assert.match(client.stderr, /unknown option -1\n/);
  const server = await run(SERVER_BIN, ['--no-tun', '--no-plain', '-5']);
  assert.is(server.code, 2);
  assert.match(server.stderr, /unknown option -5\n/);
});

// ---- the client on a tun device, in a namespace --------------------------------------------------

// Reconnect fast, give up on a silent server fast: every wait below stays short.
const FAST = ['--max-backoff', '1', '--timeout', '3'];
let host: Host;
let pki: Pki;
let dir = '';
let server: Proc; // CA-signed certificate for 127.0.0.1 and localhost
let selfSigned: Proc; // a self-signed certificate
let plainPort = 0;
let tlsPort = 0;
let selfTlsPort = 0;

async function ports(p: Proc): Promise<{ plain: number; tls: number }> {
  const l = await p.waitFor('listening', () => true, 10_000);
  const port = (s: unknown) => Number(/127\.0\.0\.1:(\d+)/.exec(String(s))?.[1]);
  return { plain: port(l.addresses), tls: port(l.tls_addresses) };
}

const { it } = useLab(
  test,
  async (lab) => {
    pki = makePki(['127.0.0.1'], ['localhost']);
    dir = mkdtempSync(join(tmpdir(), 'svpn-client-cli-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=svpn-self',
      '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: 'ignore', timeout: 20_000 });
    host = lab.host('cli');
    const base = ['--no-tun', '--host', '127.0.0.1', '--port', '0', '--tls-port', '0'];
    server = host.server([...base, '--tls-cert', pki.server.cert, '--tls-key', pki.server.key]);
    selfSigned = host.server([...base, '--tls-cert', join(dir, 'self.pem'), '--tls-key', join(dir, 'self.key')]);
    ({ plain: plainPort, tls: tlsPort } = await ports(server));
    selfTlsPort = (await ports(selfSigned)).tls;
  },
  {
    skipNote: 'client-cli: SKIPPING the tests that run the client (registered as skipped)',
    cleanUp: () => {
      pki?.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  },
);


/** Runs the client to its exit (status 3 expected) and returns its one final line, `event`. */
async function finalLine(name: string, args: string[], event: string): Promise<Record<string, unknown>> {
  const c = host.client(name, [...args, ...FAST]);
  const { code } = await c.exitWithin(15_000);
  assert.is(code, 3, `exit status:\n${c.tail()}`);
  const lines = c.lines.filter((l) => l.event === event);
  assert.is(lines.length, 1, `one ${event} line:\n${c.tail()}`);
  assert.is(lines[0].level, 'error');
  // Final: no 'down' line announcing a retry that never comes.
  assert.not.ok(c.lines.some((l) => l.event === 'down' || 'retry_in_s' in l), `a retry was announced:\n${c.tail()}`);
  assert.equal(
    c.lines.map((l) => l.event),
    ['tun_created', 'connecting', event, 'stopped'],
    'nothing else',
  );
  return lines[0];
}

it('a TLS client on the plain port exits 3: the server does not speak TLS there; the server logs tls_on_plain_port with the fix', async () => {
  const from = server.lines.length;
  const l = await finalLine('tls-on-plain', ['-s', '127.0.0.1', '-p', String(plainPort), '--tls', '--ca', pki.ca], 'tls_mismatch');
  assert.is(l.reason, `the server at 127.0.0.1:${plainPort} does not speak TLS on this port: drop --tls or use its TLS port (2003 by default)`);
  assert.is(l.detail, 'the server does not speak TLS on this port (ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE)');
  const r = await server.waitFor('refuse_connection', (x) => x.reason === 'tls_on_plain_port', 5000, from);
  assert.is(r.detail, `a TLS client on the plain port ${plainPort}: connect it to the TLS port ${tlsPort}, or drop --tls on the client`);
  assert.match(String(r.remote), /^127\.0\.0\.1:\d+$/);
});

it('a plain client on the TLS port exits 3: the port expects TLS; the server logs plain_on_tls_port with the fix', async () => {
  const from = server.lines.length;
  const l = await finalLine('plain-on-tls', ['-s', '127.0.0.1', '-p', String(tlsPort)], 'tls_mismatch');
  assert.is(l.reason, `the server at 127.0.0.1:${tlsPort} expects TLS on this port: use --tls`);
  const r = await server.waitFor('refuse_connection', (x) => x.reason === 'plain_on_tls_port', 5000, from);
  assert.is(r.detail, `a plain TCP client on the TLS port ${tlsPort}: connect it with --tls, or to the plain port ${plainPort}`);
  assert.match(String(r.remote), /^127\.0\.0\.1:\d+$/);
  assert.not.ok(server.lines.slice(from).some((x) => x.reason === 'malformed_frame' || x.event === 'connect'), 'never a session');
});

it('a self-signed server certificate that the client does not trust: exit 3 with the --ca hint (with and without --ca)', async () => {
  const reason = "the server's certificate is self-signed and not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)";
  const withCa = await finalLine('self-signed', ['-s', '127.0.0.1', '-p', String(selfTlsPort), '--tls', '--ca', pki.ca], 'tls_certificate_rejected');
  assert.is(withCa.reason, reason);
  assert.is(withCa.server, `127.0.0.1:${selfTlsPort}`);
  assert.is(withCa.fix, "give --ca FILE with the CA that signed the server's certificate (the certificate itself if it is self-signed)");
  const roots = await finalLine('self-signed-roots', ['-s', '127.0.0.1', '-p', String(selfTlsPort), '--tls'], 'tls_certificate_rejected');
  assert.is(roots.reason, reason);
  assert.match(String(roots.fix), /^give --ca FILE .*; without --ca only the system's trusted roots are accepted$/);
});

it('a server certificate from a CA the client does not trust: exit 3 with the --ca hint', async () => {
  const l = await finalLine('other-ca', ['-s', '127.0.0.1', '-p', String(tlsPort), '--tls', '--ca', pki.otherCa], 'tls_certificate_rejected');
  assert.is(l.reason, "the server's certificate is signed by a CA that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)");
  assert.match(String(l.fix), /^give --ca FILE with the CA that signed the server's certificate/);
});

it('a server certificate for other names: exit 3 with the --servername hint naming the names it carries', async () => {
  const l = await finalLine('wrong-name', ['-s', '127.0.0.1', '-p', String(tlsPort), '--tls', '--ca', pki.ca, '--servername', 'vpn.example.com'], 'tls_certificate_rejected');
  assert.is(l.reason, "the server's certificate is not for vpn.example.com: it is for 127.0.0.1, localhost (ERR_TLS_CERT_ALTNAME_INVALID)");
  assert.is(l.fix, "give --servername NAME with a name the server's certificate carries (127.0.0.1, localhost), or connect with -s to that name");
  // With a name it carries, the same client comes up.
  const ok = host.client('right-name', ['-s', '127.0.0.1', '-p', String(tlsPort), '--tls', '--ca', pki.ca, '--servername', 'localhost', ...FAST]);
  try {
    assert.ok((await ok.waitFor('ready', () => true, 10_000)).address);
  } finally {
    assert.is((await ok.stop('SIGTERM')).code, 0);
  }
});

it('a name that does not resolve is reported as such, not as a closed connection, and retried', async () => {
  // .invalid never resolves (RFC 6761). The namespace has no route off the machine, so the
  // resolver fails at once (EAI_AGAIN) instead of asking anyone.
  const c = host.client('no-dns', ['-s', 'vpn.example.invalid', ...FAST]);
  try {
    const first = await c.waitFor('down', () => true, 10_000);
    assert.match(String(first.reason), /^cannot resolve vpn\.example\.invalid: (temporary DNS failure \(EAI_AGAIN\)|no such host \(ENOTFOUND\))$/);
    assert.is(first.code, undefined);
    await c.waitFor('down', (l) => l !== first, 10_000); // it keeps trying: the network may come
    assert.is(c.exitCode, null);
  } finally {
    assert.is((await c.stop('SIGTERM')).code, 0);
  }
});

it('nothing listening: "cannot connect to HOST:PORT: connection refused (ECONNREFUSED)", and retried', async () => {
  const c = host.client('refused', ['-s', '127.0.0.1', '-p', '9', ...FAST]);
  try {
    const d = await c.waitFor('down', () => true, 10_000);
    assert.is(d.reason, 'cannot connect to 127.0.0.1:9: connection refused (ECONNREFUSED)');
    await c.waitFor('down', (l) => l !== d, 10_000);
  } finally {
    assert.is((await c.stop('SIGTERM')).code, 0);
  }
});

it('a final refusal (the server\'s own address asked for) logs only the refusal, no retry, and exits 3', async () => {
  const l = await finalLine('reserved', ['-s', '127.0.0.1', '-p', String(plainPort), '-a', '10.0.0.1'], 'address_refused');
  assert.is(l.address, '10.0.0.1');
  assert.match(String(l.reason), /refused by server: .*10\.0\.0\.1/);
});

test.run();
