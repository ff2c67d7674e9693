// The one HTTP request the server reads: a WebSocket upgrade (RFC 6455 §4.2.1) arriving on
// the plain or TLS port. The parser is strict and small on purpose. The server answers a
// single request per connection and closes it after any answer but the upgrade, so
// nothing is ever read after a refused request; and it refuses everything that RFC 9112
// lets a server refuse and that proxies have been fooled by (request smuggling): a body
// of any kind, Transfer-Encoding, a Content-Length other than 0 or given twice, obs-fold,
// whitespace before a colon, bare CR or LF, control characters, a second Host.

/** Longest request head read (request line and headers), bytes. */
export const MAX_HEAD = 8192;

export interface HttpRequest {
  method: string;
  /** The request target as sent: origin-form, starting with '/'. */
  target: string;
  /** The target without its query. */
  path: string;
  /** Header values by lower-case name, in the order received (repeated headers kept apart). */
  headers: Map<string, string[]>;
}

/** A request the server refuses: the status to answer with and why, for the log. */
export interface HttpRefusal {
  status: 400 | 404 | 403 | 429 | 431;
  why: string;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// VCHAR, obs-text, SP and HTAB (RFC 9110 field-value); no other control character.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const TARGET = /^\/[\x21-\x7e]*$/;

/**
 * Where the head ends in `buf[0, n)`: the index just past the blank line, -1 when it has
 * not arrived yet, -2 at a bare LF (a line not ended by CRLF: refused at once rather than
 * waited on, since the blank line it may be meant for never comes). `from`: where to start
 * looking (what was searched before, less three).
 */
export function headEnd(buf: Uint8Array, n: number, from = 0): number {
  for (let i = Math.max(0, from); i < n; i++) {
    if (buf[i] !== 10) continue;
    if (i === 0 || buf[i - 1] !== 13) return -2;
    if (i >= 3 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

/**
 * Parses a request head (the bytes up to and including the blank line). Returns the
 * request, or the 400 that answers it.
 */
export function parseHead(head: Uint8Array): HttpRequest | HttpRefusal {
  const text = Buffer.from(head.buffer, head.byteOffset, head.length).toString('latin1');
  if (!text.endsWith('\r\n\r\n')) return bad('the request head does not end with a blank line');
  const lines = text.slice(0, -4).split('\r\n');
  for (const l of lines) if (l.includes('\r') || l.includes('\n')) return bad('a bare CR or LF in the request head');
  const start = lines[0].split(' ');
  if (start.length !== 3) return bad('the request line is not METHOD TARGET HTTP/1.1');
  const [method, target, version] = start;
  if (!TOKEN.test(method)) return bad('the method is not a token');
  if (version !== 'HTTP/1.1') return bad(`${/^HTTP\/\d\.\d$/.test(version) ? version : 'the version'} is not HTTP/1.1, which the WebSocket handshake needs`);
  if (!TARGET.test(target)) return bad('the request target is not a path');
  const headers = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line[0] === ' ' || line[0] === '\t') return bad('obs-fold (a header line that starts with whitespace)');
    const colon = line.indexOf(':');
    if (colon <= 0) return bad('a header line without a name and a colon');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return bad('a header name that is not a token (whitespace before the colon?)');
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!FIELD_VALUE.test(value)) return bad(`a control character in the ${name} header`);
    const key = name.toLowerCase();
    const list = headers.get(key);
    if (list) list.push(value);
    else headers.set(key, [value]);
  }
  if (headers.has('transfer-encoding')) return bad('Transfer-Encoding: a WebSocket upgrade has no body');
  const length = headers.get('content-length');
  if (length && (length.length > 1 || !/^0+$/.test(length[0]))) return bad('Content-Length: a WebSocket upgrade has no body');
  if (headers.get('host')?.length !== 1) return bad('not exactly one Host header');
  const q = target.indexOf('?');
  return { method, target, path: q < 0 ? target : target.slice(0, q), headers };
}

const bad = (why: string): HttpRefusal => ({ status: 400, why });

/** The one value of a header that may appear once, '' when absent, null when repeated. */
export function single(req: HttpRequest, name: string): string | null {
  const v = req.headers.get(name);
  return v === undefined ? '' : v.length === 1 ? v[0] : null;
}

/** Whether a comma-separated header (Connection, Upgrade) lists `token`, in any case. */
export function listsToken(req: HttpRequest, name: string, token: string): boolean {
  const v = req.headers.get(name);
  return v !== undefined && v.some((s) => s.split(',').some((t) => t.trim().toLowerCase() === token));
}

const REASON: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
};

/** A complete response that closes the connection: status, a line of text, extra headers. */
export function response(status: number, text: string, extra: Record<string, string> = {}): Buffer {
  const body = text + '\n';
  let head = `HTTP/1.1 ${status} ${REASON[status] ?? 'Error'}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
  for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
  return Buffer.from(head + '\r\n' + body);
}
