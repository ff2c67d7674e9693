// The server's framer forwards a frame that spans reads as views of the chunks it arrived in
// (server/src/data/session-framer.ts), which holds only while nothing writes a chunk again
// after it was handed on. Node gives an accepted socket, plain or TLS, a buffer of its own per
// read, of the bytes read: checked here on real sockets (a change in Node would show here
// first), each chunk kept and compared once the whole stream has arrived.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import { makePki } from '../../support/security-kit.js';

const TOTAL = 4 * 1024 * 1024;

/** Sends `data` to a socket of `server` in writes of random sizes; resolves with the chunks its 'data' handed over, kept as handed. */
function receive(server: net.Server, connect: (port: number) => net.Socket, data: Buffer): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${data.length} bytes within 20 s`)), 20_000);
    server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', (s: net.Socket) => {
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got === data.length) {
          clearTimeout(timer);
          s.destroy();
          resolve(chunks);
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = connect((server.address() as net.AddressInfo).port);
      c.on('error', reject);
      for (let at = 0; at < data.length; ) {
        const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 100_000));
        c.write(data.subarray(at, at + n));
        at += n;
      }
      c.end();
    });
  });
}

/** Every chunk a buffer of its own, exactly its bytes, still holding what was sent. */
function fresh(chunks: Buffer[], data: Buffer, what: string): void {
  const seen = new Set<ArrayBufferLike>();
  let at = 0;
  for (const c of chunks) {
    assert.is(c.byteOffset, 0, `${what}: a chunk inside a larger buffer`);
    assert.is(c.buffer.byteLength, c.length, `${what}: a chunk of ${c.length} bytes in a buffer of ${c.buffer.byteLength}`);
    assert.not.ok(seen.has(c.buffer), `${what}: two chunks share a buffer`);
    seen.add(c.buffer);
    assert.ok(c.equals(data.subarray(at, at + c.length)), `${what}: a chunk was written again after it was handed over`);
    at += c.length;
  }
  assert.ok(chunks.length > 8, `${what}: only ${chunks.length} chunks`);
}

test('an accepted plain socket: a fresh buffer per read, never written again', async () => {
  const data = randomBytes(TOTAL);
  const server = net.createServer();
  try {
    fresh(await receive(server, (port) => net.connect(port, '127.0.0.1'), data), data, 'net');
  } finally {
    server.close();
  }
});

test('an accepted TLS socket: a fresh buffer per record read, never written again', async () => {
  const pki = makePki();
  const data = randomBytes(TOTAL);
  const server = tls.createServer({ cert: pki.server.certPem, key: pki.server.keyPem });
  try {
    fresh(await receive(server, (port) => tls.connect({ port, host: '127.0.0.1', ca: pki.caPem }), data), data, 'tls');
  } finally {
    server.close();
    pki.cleanup();
  }
});

test.run();
