// webSocketConnect over a fake standard WebSocket: the Socket contract (write takes all or
// nothing; onWritable once bufferedAmount has gone down; onClose once, with the code that
// says what happened), binaryType, long writes split into messages, a text message refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CloseCode, SocketHandlers } from '../../../client-sdk/src/types.js';
import { type WebSocketLike, webSocketConnect } from '../../../client-sdk/src/websocket.js';

class FakeWs implements WebSocketLike {
  static last: FakeWs;
  binaryType = 'blob';
  bufferedAmount = 0;
  readyState = 0;
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: any) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  onclose: ((ev: any) => void) | null = null;
  sent: Uint8Array[] = [];
  closedWith: number | null = null;
  constructor(readonly url: string) {
    FakeWs.last = this;
  }
  send(data: Uint8Array): void {
    this.sent.push(data);
  }
  close(code?: number): void {
    this.closedWith = code ?? 1005;
    this.readyState = 2;
  }
  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  shut(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

function handlers() {
  const log: string[] = [];
  const closes: Array<[CloseCode, string | undefined]> = [];
  const data: Uint8Array[] = [];
  const h: SocketHandlers = {
    onOpen: () => log.push('open'),
    onData: (d) => data.push(d.slice()),
    onWritable: () => log.push('writable'),
    onClose: (code, detail) => closes.push([code, detail]),
  };
  return { h, log, closes, data };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('opens with binaryType arraybuffer, passes binary messages on, writes whole, closes once with end', () => {
  const { h, log, closes, data } = handlers();
  const s = webSocketConnect('ws://x/', { WebSocket: FakeWs })(h);
  const ws = FakeWs.last;
  assert.is(ws.url, 'ws://x/');
  assert.is(ws.binaryType, 'arraybuffer');
  assert.is(s.write(Uint8Array.of(1)), 0, 'nothing taken before open');
  ws.open();
  assert.equal(log, ['open']);
  ws.onmessage!({ data: Uint8Array.of(0x45, 0).buffer });
  assert.equal(data.map((d) => Array.from(d)), [[0x45, 0]]);
  assert.is(s.write(Uint8Array.of(1, 2, 3)), 3);
  assert.equal(ws.sent.map((d) => Array.from(d)), [[1, 2, 3]]);
  s.close();
  s.close();
  assert.equal(closes, [['end', 'closed']]);
  assert.is(ws.closedWith, 1000);
  ws.shut(1000);
  assert.is(closes.length, 1, 'once');
});

test('a write longer than 64 KiB goes in several messages; past sendBuffer nothing is taken, and onWritable follows once it drains', async () => {
  const { h, log } = handlers();
  const s = webSocketConnect('ws://x/', { WebSocket: FakeWs, sendBuffer: 1000 })(h);
  const ws = FakeWs.last;
  ws.open();
  assert.is(s.write(new Uint8Array(150_000)), 150_000);
  assert.equal(ws.sent.map((d) => d.length), [65536, 65536, 18928]);
  ws.bufferedAmount = 1000;
  assert.is(s.write(new Uint8Array(10)), 0);
  assert.is(s.write(new Uint8Array(10)), 0);
  await sleep(30);
  assert.equal(log, ['open'], 'not while full');
  ws.bufferedAmount = 400;
  await sleep(40);
  assert.equal(log, ['open', 'writable'], 'once');
  assert.is(s.write(new Uint8Array(10)), 10);
  s.close();
});

test('close codes: never opened is connect_failed (with what the error said); a clean close is end; any other, error; a text message, error', () => {
  for (const [open, code, expected] of [
    [false, 1006, 'connect_failed'],
    [true, 1000, 'end'],
    [true, 1006, 'error'],
    [true, 1009, 'error'],
  ] as const) {
    const { h, closes } = handlers();
    webSocketConnect('ws://x/', { WebSocket: FakeWs })(h);
    const ws = FakeWs.last;
    if (open) ws.open();
    ws.onerror!({ message: 'Unexpected server response: 404' });
    ws.shut(code, 'why');
    assert.is(closes.length, 1);
    assert.is(closes[0][0], expected, `${open} ${code}`);
    assert.match(closes[0][1]!, String(code));
    if (!open) assert.match(closes[0][1]!, /404/);
  }
  const { h, closes } = handlers();
  webSocketConnect('ws://x/', { WebSocket: FakeWs })(h);
  FakeWs.last.open();
  FakeWs.last.onmessage!({ data: 'text' });
  assert.equal(closes.map((c) => c[0]), ['error']);
  assert.is(FakeWs.last.closedWith, 1000);
});

test('no WebSocket in the runtime, or a constructor that throws: connect_failed at once, saying so', () => {
  const { h, closes } = handlers();
  const s = webSocketConnect('ws://x/')(h);
  assert.is(closes[0][0], 'connect_failed');
  assert.match(closes[0][1]!, /no WebSocket/);
  assert.is(s.write(Uint8Array.of(1)), 0);
  s.close();
  const t = handlers();
  class Bad {
    constructor() {
      throw new Error('SyntaxError: bad URL');
    }
  }
  webSocketConnect('nope', { WebSocket: Bad as never })(t.h);
  assert.equal(t.closes.map((c) => c[0]), ['connect_failed']);
  assert.match(t.closes[0][1]!, /bad URL/);
});

test.run();
