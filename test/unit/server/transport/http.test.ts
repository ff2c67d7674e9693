// The WebSocket transport's pure parts: what the first bytes of a connection are, where an
// HTTP request head ends, and the strict parse of that head (what it refuses, and why).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_HEAD, headEnd, listsToken, parseHead, response, single, type HttpRequest } from '../../../../server/src/transport/http.js';
import { classify } from '../../../../server/src/transport/websocket.js';
import { KEEPALIVE, controlMessage, extMessage } from '../../../../protocol/index.js';

const bytes = (s: string) => Buffer.from(s, 'latin1');

test('classify: an HTTP method and a space is HTTP; a protocol frame, a TLS record or anything else is the stream; letters alone wait', () => {
  for (const s of ['GET / HTTP/1.1', 'POST /', 'OPTIONS * HTTP/1.1', 'PROPFIND /x', 'GET ']) assert.is(classify(bytes(s)), 'http', s);
  for (const b of [controlMessage(0, 0), extMessage(0, 0, 1, []), KEEPALIVE, Uint8Array.of(0x16, 3, 1), Uint8Array.of(0x45, 0x14), Uint8Array.of(0x60)])
    assert.is(classify(b), 'stream', Buffer.from(b).toString('hex'));
  for (const s of ['get / HTTP/1.1', 'GE T', 'G ', 'GET\t/', 'ABCDEFGHIJKLMNOPQ ']) assert.is(classify(bytes(s)), 'stream', s);
  for (const s of ['G', 'GE', 'GET', 'E', 'OPTIONS']) assert.is(classify(bytes(s)), 'more', s);
  assert.is(classify(bytes('GET / HTTP'), 2), 'more', 'only the first n bytes count');
});

test('headEnd: just past the blank line, -1 before it, -2 at a bare LF, resuming where it left off', () => {
  const h = bytes('GET / HTTP/1.1\r\nHost: x\r\n\r\nrest');
  assert.is(headEnd(h, h.length), h.indexOf('rest'));
  assert.is(headEnd(h, 20), -1);
  assert.is(headEnd(h, h.length, 20), h.indexOf('rest'));
  assert.is(headEnd(bytes('GET / HTTP/1.1\nHost: x\n\n'), 24), -2);
  assert.is(headEnd(bytes('\n'), 1), -2);
  assert.is(headEnd(bytes('GET / HTTP/1.1\r\n\r\n'), 18), 18);
});

const UP = ['Host: vpn.example.net', 'Upgrade: websocket', 'Connection: keep-alive, Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13'];
const head = (first: string, lines: string[] = UP) => bytes([first, ...lines].join('\r\n') + '\r\n\r\n');
const parse = (first: string, lines?: string[]) => parseHead(head(first, lines));

test('parseHead: a clean upgrade, its path without the query, headers by lower-case name with repeats kept', () => {
  const r = parse('GET /vpn?x=1 HTTP/1.1', [...UP, 'X-Forwarded-For: 192.0.2.1', 'x-forwarded-for: 192.0.2.2', 'Empty:', 'Content-Length: 0']) as HttpRequest;
  assert.ok(!('status' in r), JSON.stringify(r));
  assert.equal([r.method, r.target, r.path], ['GET', '/vpn?x=1', '/vpn']);
  assert.equal(r.headers.get('x-forwarded-for'), ['192.0.2.1', '192.0.2.2']);
  assert.equal(r.headers.get('empty'), ['']);
  assert.is(single(r, 'host'), 'vpn.example.net');
  assert.is(single(r, 'x-forwarded-for'), null);
  assert.is(single(r, 'origin'), '');
  assert.ok(listsToken(r, 'connection', 'upgrade') && listsToken(r, 'upgrade', 'websocket') && !listsToken(r, 'connection', 'close'));
});

test('parseHead refuses with 400 what RFC 9112 lets a server refuse and proxies have been fooled by', () => {
  const refused: Array<[string, Uint8Array]> = [
    ['HTTP/1.0', head('GET / HTTP/1.0')],
    ['HTTP/2.0', head('GET / HTTP/2.0')],
    ['four parts', head('GET / HTTP/1.1 x')],
    ['two spaces', head('GET  / HTTP/1.1')],
    ['a method that is not a token', head('G(T / HTTP/1.1')],
    ['an absolute target', head('GET http://x/ HTTP/1.1')],
    ['a target with a space', head('GET /a b HTTP/1.1')],
    ['asterisk', head('OPTIONS * HTTP/1.1')],
    ['obs-fold', head('GET / HTTP/1.1', [...UP, 'X: a', '\tb'])],
    ['space before colon', head('GET / HTTP/1.1', [...UP, 'X : a'])],
    ['no colon', head('GET / HTTP/1.1', [...UP, 'X'])],
    ['empty name', head('GET / HTTP/1.1', [...UP, ': a'])],
    ['NUL', head('GET / HTTP/1.1', [...UP, 'X: a\x00'])],
    ['DEL', head('GET / HTTP/1.1', [...UP, 'X: \x7f'])],
    ['bare CR', head('GET / HTTP/1.1', [...UP, 'X: a\rb'])],
    ['Transfer-Encoding', head('GET / HTTP/1.1', [...UP, 'Transfer-Encoding: identity'])],
    ['Content-Length 1', head('GET / HTTP/1.1', [...UP, 'Content-Length: 1'])],
    ['Content-Length twice', head('GET / HTTP/1.1', [...UP, 'Content-Length: 0', 'Content-Length: 0'])],
    ['Content-Length not a number', head('GET / HTTP/1.1', [...UP, 'Content-Length: 0x0'])],
    ['no Host', head('GET / HTTP/1.1', UP.slice(1))],
    ['two Hosts', head('GET / HTTP/1.1', [...UP, 'Host: y'])],
    ['no blank line', bytes('GET / HTTP/1.1\r\nHost: x\r\n')],
  ];
  for (const [what, h] of refused) {
    const r = parseHead(h);
    assert.ok('status' in r && r.status === 400, `${what}: ${JSON.stringify(r)}`);
  }
});

test('response: a complete answer that closes, with its length', () => {
  const r = response(404, 'not here', { 'X-A': 'b' }).toString();
  assert.match(r, /^HTTP\/1\.1 404 Not Found\r\n/);
  assert.match(r, /\r\nConnection: close\r\n/);
  assert.match(r, /\r\nContent-Length: 9\r\n/);
  assert.match(r, /\r\nX-A: b\r\n\r\nnot here\n$/);
  assert.ok(MAX_HEAD >= 4096);
});

test.run();
