// linux/client/native-path.ts without a tun: a loopback server plays simplevpn-server and a
// fake device records attach(), detach() and sendRaw(). The socket hands the SDK whole frames
// only; once ready it attaches with the unfinished frame as its initial bytes; then writes go
// through sendRaw() and the device's events reach the SDK as a socket's would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { KEEPALIVE } from '../../../../protocol/index.js';
import type { SocketHandlers } from '../../../../client-sdk/src/types.js';
import type { AttachHandlers, TunDevice } from '../../../../linux/tun.js';
import { NativePath, nativePathEnabled } from '../../../../linux/client/native-path.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  for (const t0 = Date.now(); !cond(); await sleep(2)) if (Date.now() - t0 > ms) throw new Error('timed out waiting for ' + what);
}

/** An IPv4 frame of `len` bytes from 10.0.0.9, its bytes numbered. */
function frame(len: number): Buffer {
  const b = Buffer.alloc(len, len & 0xff);
  b.set([0x45, 0, len >> 8, len & 0xff, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 9, 10, 0, 0, 2]);
  return b;
}

function fakeTun(offload = false) {
  const t = {
    offload,
    attached: null as null | { fd: number; initial: Buffer; superFrames: boolean; h: AttachHandlers },
    raw: [] as Buffer[],
    detaches: 0,
    attach(fd: number, initial: Uint8Array, superFrames: boolean, h: AttachHandlers) {
      t.attached = { fd, initial: Buffer.from(initial), superFrames, h };
    },
    detach() {
      t.detaches++;
      t.attached = null;
    },
    sendRaw(b: Uint8Array) {
      t.raw.push(Buffer.from(b));
      return b.length;
    },
  };
  return t;
}

async function setup(offload = false) {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const peer = new Promise<net.Socket>((r) => server.once('connection', r));
  const tun = fakeTun(offload);
  const path = new NativePath(tun as unknown as TunDevice, () => {}, () => {});
  const got: Buffer[] = [];
  const events: string[] = [];
  const h: SocketHandlers = {
    onOpen: () => events.push('open'),
    onData: (c) => got.push(Buffer.from(c)),
    onWritable: () => events.push('writable'),
    onClose: (code, detail) => events.push(`close:${code}:${detail ?? ''}`),
  };
  const sock = path.connect('127.0.0.1', (server.address() as net.AddressInfo).port)(h);
  const p = await peer;
  await until('open', () => events.includes('open'));
  return { server, p, tun, path, got, events, sock };
}

test('SIMPLEVPN_NATIVE_PATH=0 turns it off; anything else leaves it on', () => {
  assert.is(nativePathEnabled({ SIMPLEVPN_NATIVE_PATH: '0' }), false);
  assert.is(nativePathEnabled({}), true);
  assert.is(nativePathEnabled({ SIMPLEVPN_NATIVE_PATH: '1' }), true);
});

test('whole frames only to the SDK; on ready, attach with the unfinished frame; then writes go through sendRaw', async () => {
  const { server, p, tun, path, got, events, sock } = await setup();
  try {
    const a = frame(100);
    const b = frame(300);
    const c = frame(1400);
    const stream = Buffer.concat([a, b, c]);
    // a whole and b's first 3 bytes (length not known yet), then the rest of b and part of c.
    p.write(stream.subarray(0, 103));
    await until('a', () => got.length === 1);
    assert.equal(got[0], a);
    p.write(stream.subarray(103, 500));
    await until('b', () => got.length === 2);
    assert.equal(got[1], b, 'b assembled whole across chunks');
    assert.equal(sock.write(KEEPALIVE), KEEPALIVE.length, 'before attach, writes go to the socket');
    assert.is(path.ready(false), true);
    await until('attach', () => tun.attached !== null);
    assert.equal(tun.attached!.initial, c.subarray(0, 100), "c's first bytes, which the SDK never saw");
    assert.ok(tun.attached!.fd > 0);
    // Node no longer reads: the rest of c is for C.
    p.write(stream.subarray(500));
    await sleep(50);
    assert.is(got.length, 2);
    assert.is(sock.write(KEEPALIVE), KEEPALIVE.length);
    assert.equal(tun.raw, [Buffer.from(KEEPALIVE)]);
    // Events from C reach the SDK.
    tun.attached!.h.onData(KEEPALIVE);
    assert.equal(got[2], Buffer.from(KEEPALIVE));
    tun.attached!.h.onActivity();
    assert.is(got[3]!.length, 0, 'packets came: an empty chunk, the SDK\'s sign of life');
    tun.attached!.h.onEnd();
    assert.ok(events.includes('close:end:end of stream'), events.join(' '));
    assert.is(tun.detaches, 1, 'detached before the SDK heard of it');
    assert.is(sock.write(KEEPALIVE), 0, 'nothing is written after the close');
    assert.is(events.filter((e) => e.startsWith('close')).length, 1, 'one close');
  } finally {
    sock.close();
    p.destroy();
    server.close();
  }
});

test('an error from C reaches the SDK as the socket error; with offloads, no attach unless super-packets travel whole', async () => {
  const { server, p, tun, path, events, sock } = await setup(true);
  try {
    assert.is(path.ready(false), false, 'offloads without super frames: the JavaScript path');
    assert.is(path.ready(true), true);
    await until('attach', () => tun.attached !== null);
    assert.is(tun.attached!.superFrames, true);
    tun.attached!.h.onError(Object.assign(new Error('read failed'), { code: 'ECONNRESET' }));
    assert.ok(events.includes('close:error:ECONNRESET'), events.join(' '));
    assert.is(tun.detaches, 1);
    assert.is(path.ready(true), false, 'a closed socket does not attach');
  } finally {
    sock.close();
    p.destroy();
    server.close();
  }
});

test('bytes that are no frame go to the SDK as they are, for its framer to name the error', async () => {
  const { server, p, got, sock } = await setup();
  try {
    p.write(Buffer.concat([frame(40), Buffer.from([0x00, 1, 2])]));
    await until('bytes', () => got.length === 1);
    assert.equal(got[0], Buffer.concat([frame(40), Buffer.from([0x00, 1, 2])]));
  } finally {
    sock.close();
    p.destroy();
    server.close();
  }
});

test.run();
