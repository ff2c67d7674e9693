// Helpers for the security tests: a throwaway PKI made with the openssl CLI, auth files,
// a TCP proxy that can black-hole its connections (a link that dies without a FIN), SDK
// and raw clients over TLS, raw extension requests, a guard that records uncaught
// exceptions and unhandled rejections, a logger that keeps every line, and the server CLI
// as a child process.

import { execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { type Tlv, T_LEASE, eachTlv, DST, readU32 } from '../../protocol/index.js';
import { tcpConnect } from '../../client-sdk/node/tcp.js';
import { tlsConnect } from '../../client-sdk/node/tls.js';
import type { Connect } from '../../client-sdk/src/types.js';
import { hashSecret } from '../../server/src/control/auth.js';
import type { Logger } from '../../common/log.js';
import { type Harness, type RawClient, type SdkPeer, extRequest, waitFor } from './server-net.js';

// ---- PKI ----------------------------------------------------------------------------------

export interface CertPair {
  cert: string; // path
  key: string; // path
  certPem: Buffer;
  keyPem: Buffer;
}

export interface Pki {
  dir: string;
  /** The CA that signed server, server2 and client. */
  ca: string;
  caPem: Buffer;
  /** A second CA that has nothing to do with the first. */
  otherCa: string;
  otherCaPem: Buffer;
  /** Server certificate for the given IPs and the name localhost (SAN), signed by ca. */
  server: CertPair;
  /** Another server certificate, same CA and SAN, for reload tests. */
  server2: CertPair;
  /** Client certificate (CN client-1) signed by ca. */
  client: CertPair;
  /** Client certificate signed by otherCa. */
  otherClient: CertPair;
  /** Server certificate signed by otherCa (same SAN). */
  otherServer: CertPair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 20_000 });
  } catch (err: any) {
    throw new Error(`openssl ${args.join(' ')} failed: ${err.stderr?.toString() || err.message}`);
  }
}

const KEYGEN = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(
    ['req', '-x509', ...KEYGEN, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=svpn-test-${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
}

function makeLeaf(dir: string, ca: string, name: string, cn: string, ext: string): CertPair {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(['req', ...KEYGEN, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], dir);
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  return { cert, key, certPem: readFileSync(cert), keyPem: readFileSync(key) };
}

/** Generates the test PKI in a fresh temporary directory. `ips` and `names` go into the server SAN. */
export function makePki(ips: string[] = ['127.0.0.1'], names: string[] = ['localhost']): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'svpn-sec-pki-'));
  try {
    makeCa(dir, 'ca');
    makeCa(dir, 'otherca');
    const san = `subjectAltName=${[...ips.map((a) => 'IP:' + a), ...names.map((n) => 'DNS:' + n)].join(',')}\nbasicConstraints=CA:FALSE\n`;
    const serverExt = san + 'extendedKeyUsage=serverAuth\n';
    const clientExt = 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n';
    return {
      dir,
      ca: join(dir, 'ca.pem'),
      caPem: readFileSync(join(dir, 'ca.pem')),
      otherCa: join(dir, 'otherca.pem'),
      otherCaPem: readFileSync(join(dir, 'otherca.pem')),
      server: makeLeaf(dir, 'ca', 'server', ips[0], serverExt),
      server2: makeLeaf(dir, 'ca', 'server2', ips[0], serverExt),
      client: makeLeaf(dir, 'ca', 'client', 'client-1', clientExt),
      otherClient: makeLeaf(dir, 'otherca', 'otherclient', 'intruder', clientExt),
      otherServer: makeLeaf(dir, 'otherca', 'otherserver', ips[0], serverExt),
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Another client certificate signed by the test CA, for subject CN `cn` (an auth id). */
export function makeClientCert(pki: Pki, name: string, cn: string): CertPair {
  return makeLeaf(pki.dir, 'ca', name, cn, 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');
}

/** SHA-256 fingerprint of a PEM certificate, as node:tls reports fingerprint256. */
export function fingerprint(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}

// ---- auth files ---------------------------------------------------------------------------

export interface TestClient {
  id: string;
  secret: string;
  address?: string;
}

/** A random secret as an operator would make one. */
export const newSecret = (): string => randomBytes(16).toString('hex');

const hashes = new Map<string, string>();

/** The auth-file JSON text for `clients` (hashes are made once per secret and cached). */
export async function authText(clients: TestClient[]): Promise<string> {
  const out = [];
  for (const c of clients) {
    let h = hashes.get(c.secret);
    if (!h) hashes.set(c.secret, (h = await hashSecret(c.secret)));
    out.push(c.address ? { id: c.id, secret: h, address: c.address } : { id: c.id, secret: h });
  }
  return JSON.stringify({ clients: out }, null, 2);
}

export async function writeAuth(path: string, clients: TestClient[]): Promise<string> {
  writeFileSync(path, await authText(clients));
  return path;
}

/** The credentials of `c`, for the SDK's `credentials` option. */
export const credsOf = (c: TestClient): { id: string; secret: string } => ({ id: c.id, secret: c.secret });

/** The lease token in an extension reply, or null. */
export function leaseOf(reply: Uint8Array): Uint8Array | null {
  let lease: Uint8Array | null = null;
  eachTlv(reply, (t, v) => {
    if (t === T_LEASE) lease = v.slice();
  });
  return lease;
}

// ---- logging ------------------------------------------------------------------------------

export interface LogLine {
  level: string;
  event: string;
  fields: Record<string, any>;
}

/** A Logger that keeps every line. */
export function memoryLogger(): Logger & { lines: LogLine[]; find(event: string): LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    log(level, event, fields = {}) {
      lines.push({ level, event, fields: { ...fields } });
    },
    find(event: string) {
      return lines.filter((l) => l.event === event);
    },
  };
}

// ---- crash guard ----------------------------------------------------------------------------

/** Records uncaught exceptions and unhandled rejections until dispose(). */
export function crashGuard(): { errors: unknown[]; dispose(): void } {
  const errors: unknown[] = [];
  const onErr = (e: unknown) => errors.push(e);
  process.on('uncaughtException', onErr);
  process.on('unhandledRejection', onErr);
  return {
    errors,
    dispose() {
      process.off('uncaughtException', onErr);
      process.off('unhandledRejection', onErr);
    },
  };
}

// ---- TLS clients --------------------------------------------------------------------------

export interface TlsClientOpts {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/**
 * tlsConnect to 127.0.0.1:`port`, verifying the name localhost (in the test certificate's
 * SAN). The name is given explicitly: without `servername` tlsConnect passes
 * checkServerIdentity: undefined to tls.connect, which throws ERR_INTERNAL_ASSERTION on
 * Node 20 (security-tls.test.ts tests the default on its own).
 */
export function tlsTo(port: number, o: TlsClientOpts): Connect {
  return tlsConnect({ host: '127.0.0.1', port, ca: o.ca, cert: o.cert, key: o.key, servername: 'localhost' });
}

/** An SDK client (SdkPeer) over TLS to the harness's TLS listener. */
export function tlsSdk(h: Harness, o: TlsClientOpts, opts: Parameters<Harness['sdk']>[0] = {}): SdkPeer {
  return h.sdk({ connect: tlsTo(h.server.tlsPort, o), ...opts });
}

/**
 * A raw TLS connection (no SDK) to `port`: resolves once the handshake is done, or with the
 * error that ended it. Records what it receives.
 */
export function rawTls(
  port: number,
  o: TlsClientOpts & { paused?: boolean },
  ms = 5000,
): Promise<{ sock: tls.TLSSocket | null; error: (Error & { code?: string }) | null; received: Buffer[]; closed: () => boolean }> {
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let closed = false;
    let settled = false;
    const sock = tls.connect({ host: '127.0.0.1', port, ca: o.ca, cert: o.cert, key: o.key, minVersion: 'TLSv1.2' });
    const done = (error: (Error & { code?: string }) | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      resolve({ sock: error ? null : sock, error, received, closed: () => closed });
    };
    const t = setTimeout(() => {
      sock.destroy();
      done(new Error(`TLS connect to ${port} timed out`));
    }, ms);
    sock.on('secureConnect', () => {
      if (o.paused) sock.pause();
      done(null);
    });
    sock.on('data', (d) => received.push(d));
    sock.on('error', (e) => {
      if (!settled) {
        sock.destroy();
        done(e);
      }
    });
    sock.on('close', () => {
      closed = true;
      done(new Error('closed before the handshake completed'));
    });
  });
}

// ---- proxy ----------------------------------------------------------------------------------

interface Pipe {
  down: net.Socket; // towards the client
  up: net.Socket; // towards the server
  dead: boolean; // black-holed: nothing crosses, closes do not propagate
}

/**
 * A TCP proxy to 127.0.0.1:`target`. blackhole() kills the current connections the way a
 * dead link does: nothing crosses any more and neither side hears a close, so the server
 * keeps its session. New connections are forwarded normally.
 */
export class Proxy {
  private constructor(
    readonly server: net.Server,
    readonly port: number,
    readonly pipes: Pipe[],
    /** Every byte that crossed, client to server and server to client (with capture on). */
    readonly wire: { toServer: Buffer[]; toClient: Buffer[] },
  ) {}

  static async start(target: number, capture = false): Promise<Proxy> {
    const pipes: Pipe[] = [];
    const wire = { toServer: [] as Buffer[], toClient: [] as Buffer[] };
    const server = net.createServer((down) => {
      const up = net.connect({ host: '127.0.0.1', port: target });
      const p: Pipe = { down, up, dead: false };
      pipes.push(p);
      down.setNoDelay(true);
      up.setNoDelay(true);
      down.on('data', (d) => {
        if (p.dead) return;
        if (capture) wire.toServer.push(d);
        up.write(d);
      });
      up.on('data', (d) => {
        if (p.dead) return;
        if (capture) wire.toClient.push(d);
        down.write(d);
      });
      const closeOther = (other: net.Socket) => () => {
        if (!p.dead) other.destroy();
      };
      down.on('close', closeOther(up));
      up.on('close', closeOther(down));
      down.on('error', () => {});
      up.on('error', () => {});
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return new Proxy(server, (server.address() as net.AddressInfo).port, pipes, wire);
  }

  /** Connections currently forwarding. */
  get live(): number {
    return this.pipes.filter((p) => !p.dead && !p.down.destroyed).length;
  }

  blackhole(): void {
    for (const p of this.pipes) p.dead = true;
  }

  close(): void {
    for (const p of this.pipes) {
      p.down.destroy();
      p.up.destroy();
    }
    this.server.close();
  }
}

/** A Connect through `proxy`, for SdkPeer. */
export function viaProxy(proxy: Proxy): Connect {
  return tcpConnect({ host: '127.0.0.1', port: proxy.port });
}

/** How many times `peer` has reported ready. */
export function readyCount(peer: SdkPeer): number {
  return peer.states.filter((s) => s.state === 'ready').length;
}

/** Waits (bounded) until `peer` has reported ready `n` times. */
export async function waitReadyCount(peer: SdkPeer, n: number, ms: number): Promise<void> {
  await waitFor(() => readyCount(peer) >= n, ms, `SDK client ready ${n} times`, () => peer.states);
}

// ---- raw extension requests ----------------------------------------------------------------

/**
 * Sends an extension request for `addr` (0: any) with `tlvs` on `c` and returns the first
 * frame the server answers with, or null when it closes without answering.
 */
export async function rawRequest(c: RawClient, addr: number, tlvs: Tlv[], ms = 3000): Promise<Uint8Array | null> {
  const before = c.frames.length;
  c.write(extRequest(addr, tlvs));
  await waitFor(() => c.frames.length > before || c.closed, ms, 'an answer to the request');
  return c.frames.length > before ? c.frames[before] : null;
}

/** Address (destination) of a reply frame. */
export const replyAddress = (f: Uint8Array): number => readU32(f, DST);

