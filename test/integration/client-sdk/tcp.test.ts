// The Node adapter (client-sdk/node/tcp.ts) on real sockets: how each way a connection ends
// reaches the SDK as a close code, so that a 2013 server's refusal (it closes during the
// address request) is told from a reset by the code, and what write() takes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { Client, type DownInfo } from '../../../client-sdk/src/client.js';
import type { CloseCode, SocketHandlers } from '../../../client-sdk/src/types.js';
import { tcpConnect, wrapNodeSocket } from '../../../client-sdk/node/tcp.js';
import { nodeClock } from '../../../client-sdk/node/clock.js';
import { describeDown } from '../../../client-sdk/node/describe.js';
import { REFUSE_IN_USE } from '../../../protocol/index.js';
import { waitFor } from '../../support/server-net.js';

/** A server that does `onRequest` with each connection once its first bytes arrive. */
async function server(onRequest: (s: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    s.once('data', () => onRequest(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

/** The first 'down' of an SDK client dialling `port` (no retry within the test). */
async function firstDown(port: number): Promise<DownInfo> {
  let down: DownInfo | null = null;
  const c = new Client({
    connect: tcpConnect({ host: '127.0.0.1', port }),
    clock: nodeClock,
    tun: { write() {} },
    minBackoff: 60,
    onState: (s) => {
      if (s.state === 'down' && !down) down = s;
    },
  });
  c.start();
  try {
    await waitFor(() => down !== null, 5000, 'the client to go down');
  } finally {
    c.close();
  }
  return down!;
}

test('a server that closes during the address request refuses, as a 2013 server does: code 1, by the close code', async () => {
  const s = await server((sock) => sock.end());
  try {
    const d = await firstDown(s.port);
    assert.is(d.reason, 'refused');
    assert.is(d.code, REFUSE_IN_USE);
    assert.is(describeDown(d), 'connection closed during the address request (a seed server refuses so)');
  } finally {
    await s.close();
  }
});

test('a reset during the address request is a lost connection, not a refusal', async () => {
  const s = await server((sock) => sock.resetAndDestroy());
  try {
    const d = await firstDown(s.port);
    assert.is(d.reason, 'closed');
    assert.is(d.code, 0);
    assert.is(d.detail, 'ECONNRESET');
  } finally {
    await s.close();
  }
});

test('nothing listening: connect_failed, with the address and the errno in the detail', async () => {
  const s = await server(() => {});
  const port = s.port;
  await s.close();
  const d = await firstDown(port);
  assert.is(d.reason, 'connect_failed');
  assert.is(d.detail, `cannot connect to 127.0.0.1:${port}: connection refused (ECONNREFUSED)`);
});

test('wrapNodeSocket: an open socket, writes taken whole until sendBuffer is full, then none and onWritable after the drain', async () => {
  let peer = null as net.Socket | null;
  const srv = net.createServer((s) => {
    peer = s;
    s.pause(); // read nothing: the client's socket fills up
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const sock = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const events: string[] = [];
  const closes: Array<[CloseCode, string | undefined]> = [];
  const h: SocketHandlers = {
    onOpen: () => events.push('open'),
    onData: () => {},
    onWritable: () => events.push('writable'),
    onClose: (code, detail) => closes.push([code, detail]),
  };
  const w = wrapNodeSocket({ socket: sock, handlers: h, sendBuffer: 64 * 1024, open: true });
  try {
    await waitFor(() => events.includes('open'), 2000, 'onOpen');
    const chunk = new Uint8Array(16 * 1024);
    let took = 0;
    let refusedAt = -1;
    for (let i = 0; i < 2000 && refusedAt < 0; i++) {
      const n = w.write(chunk);
      assert.ok(n === 0 || n === chunk.length, `all or nothing: ${n}`);
      if (n === 0) refusedAt = i;
      took += n;
      if (i % 8 === 7) await new Promise((r) => setImmediate(r)); // let the writes leave
    }
    assert.ok(refusedAt > 0, `write() took nothing once the socket held sendBuffer bytes (after ${took})`);
    assert.not.ok(events.includes('writable'));
    peer!.resume();
    await waitFor(() => events.includes('writable'), 5000, 'onWritable after the drain');
    assert.is(w.write(chunk), chunk.length);
    peer!.end();
    await waitFor(() => closes.length > 0, 2000, 'onClose');
    assert.equal(closes, [['end', 'end of stream']]);
  } finally {
    w.close();
    peer?.destroy();
    await new Promise((r) => srv.close(r));
  }
});

test.run();
