// The Node adapter's WebSocket (client-sdk/node/websocket.ts, what simplevpn-client dials ws
// and wss with) asks for no permessage-deflate: its upgrade request carries no
// Sec-WebSocket-Extensions, so no server can turn compression on for the packet stream.
// It hands on the messages as ws's Node Buffers, not ArrayBuffers copied from them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { nodeWebSocketConnect } from '../../../client-sdk/node/websocket.js';
import { waitFor } from '../../support/server-net.js';

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

test('messages arrive as Node Buffers (no ArrayBuffer copy), byte for byte, several in a row', async () => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const sent = [Buffer.from([1, 2, 3]), Buffer.alloc(70_000, 9), Buffer.from([4])];
  wss.on('connection', (ws) => {
    for (const b of sent) ws.send(b, { binary: true });
  });
  const got: Uint8Array[] = [];
  const socket = nodeWebSocketConnect({ url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/` })({
    onOpen: () => {},
    onData: (c) => got.push(c),
    onWritable: () => {},
    onClose: () => {},
  });
  try {
    await waitFor(() => got.length === sent.length, 5000, 'the three messages');
    got.forEach((c, i) => {
      assert.ok(Buffer.isBuffer(c), `message ${i}: a Buffer, not a copy made into an ArrayBuffer`);
      assert.ok(Buffer.from(c.buffer, c.byteOffset, c.byteLength).equals(sent[i]!), `message ${i} byte for byte`);
    });
  } finally {
    socket.close();
    await new Promise((r) => wss.close(r));
  }
});

test.run();
