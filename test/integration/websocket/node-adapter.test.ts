// The Node adapter's WebSocket (client-sdk/node/websocket.ts, what simplevpn-client dials ws
// and wss with) asks for no permessage-deflate: its upgrade request carries no
// Sec-WebSocket-Extensions, so no server can turn compression on for the packet stream.
// Once open it reads the stream's bytes off the socket as they come, as Node Buffers (views of
// the reads, not copies), and writes masked binary messages itself (client-sdk/node/ws-stream.ts);
// ws still answers pings and closes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { nodeWebSocketConnect } from '../../../client-sdk/node/websocket.js';
import { sleep, waitFor } from '../../support/server-net.js';

test('the upgrade request offers no extension (permessage-deflate off)', async () => {
  const requests: http.IncomingHttpHeaders[] = [];
  const server = http.createServer();
  server.on('upgrade', (req, socket) => {
    requests.push(req.headers);
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  let closed = '';
  const socket = nodeWebSocketConnect({ url: `ws://127.0.0.1:${port}/vpn` })({
    onOpen: () => {},
    onData: () => {},
    onWritable: () => {},
    onClose: (code) => (closed = code),
  });
  try {
    await waitFor(() => requests.length === 1 && closed !== '', 5000, 'the upgrade request and the close');
    assert.is(requests[0]!.upgrade, 'websocket', 'a WebSocket upgrade');
    assert.is(requests[0]!['sec-websocket-extensions'], undefined, 'no extension offered');
    assert.is(closed, 'connect_failed', 'the 404 ends the attempt');
  } finally {
    socket.close();
    await new Promise((r) => server.close(r));
  }
});

test('what the server sends arrives as Node Buffers (views of the reads, no copy), byte for byte, messages of every size in a row', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const sent = [Buffer.from([1, 2, 3]), Buffer.alloc(70_000, 9), Buffer.from([4]), randomBytes(200), randomBytes(65_536)];
  wss.on('connection', (ws) => {
    for (const b of sent) ws.send(b, { binary: true });
  });
  const got: Uint8Array[] = [];
  const want = Buffer.concat(sent);
  const socket = nodeWebSocketConnect({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/` })({
    onOpen: () => {},
    onData: (c) => got.push(c),
    onWritable: () => {},
    onClose: () => {},
  });
  try {
    // Message boundaries mean nothing: the bytes, in order.
    await waitFor(() => got.reduce((n, c) => n + c.length, 0) >= want.length, 5000, 'every byte');
    got.forEach((c, i) => assert.ok(Buffer.isBuffer(c), `piece ${i}: a Buffer, not a copy made into an ArrayBuffer`));
    assert.ok(Buffer.concat(got).equals(want), 'byte for byte');
  } finally {
    socket.close();
    await new Promise((r) => wss.close(r));
  }
});

test('what it sends arrives byte for byte as masked binary messages of at most 64 KiB; pings are answered; the server\'s close ends it', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const received: Buffer[] = [];
  const pongs: string[] = [];
  let server: import('ws').WebSocket | null = null;
  wss.on('connection', (ws) => {
    server = ws;
    ws.on('message', (d: Buffer, binary: boolean) => received.push(binary ? d : Buffer.from('TEXT')));
    ws.on('pong', (d: Buffer) => pongs.push(d.toString()));
  });
  let open = false;
  let closed = '';
  const socket = nodeWebSocketConnect({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/` })({
    onOpen: () => (open = true),
    onData: () => {},
    onWritable: () => {},
    onClose: (code) => (closed = code),
  });
  try {
    await waitFor(() => open && server !== null, 5000, 'open');
    // Of every header length, more than the adapter sends in one message (split in 64 KiB), a
    // view into a larger buffer, and enough of them that the buffers go round.
    const writes = [new Uint8Array([7]), randomBytes(125), randomBytes(126), randomBytes(65_535), randomBytes(65_536), randomBytes(150_000), randomBytes(3000).subarray(100, 2100)];
    for (let round = 0; round < 20; round++) for (const w of writes) while (socket.write(w) !== w.length) await sleep(2); // full: later
    const want = Buffer.concat(Array.from({ length: 20 }, () => writes).flat());
    await waitFor(() => received.reduce((n, c) => n + c.length, 0) >= want.length, 5000, 'every byte at the server');
    assert.ok(Buffer.concat(received).equals(want), 'byte for byte');
    assert.ok(received.every((r) => r.length <= 65_536), 'in messages of at most 64 KiB');
    server!.ping('are you there');
    await waitFor(() => pongs.length === 1, 3000, 'the pong');
    assert.is(pongs[0], 'are you there');
    server!.close(1000);
    await waitFor(() => closed !== '', 5000, 'the close');
    assert.is(closed, 'end');
  } finally {
    socket.close();
    await new Promise((r) => wss.close(r));
  }
});

test.run();
