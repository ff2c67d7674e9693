// An HTTP proxy's CONNECT tunnel under any of the Node transports: the tunnel is opened
// first (the request written by hand, RFC 9110 section 9.3.6), then TCP, TLS or a WebSocket
// runs inside it. A Connect made here returns its Socket at once and hands the calls on to
// the transport's Socket once the tunnel is up.

import net from 'node:net';
import type { CloseCode, Connect, Socket, SocketHandlers } from '../src/types.js';

export interface ProxyOptions {
  /** http://[user:pass@]host:port */
  url: string;
  /** How long the proxy may take to answer the CONNECT (10 s). */
  timeout?: number;
}

/** The proxy's address and its Proxy-Authorization, from an http:// URL; throws on a bad one. */
export function parseProxyUrl(text: string): { host: string; port: number; auth?: string; display: string } {
  const u = new URL(text);
  if (u.protocol !== 'http:') throw new Error(`the proxy must be an http:// URL, got "${text}"`);
  if (!u.hostname) throw new Error(`the proxy URL has no host: "${text}"`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || 80);
  const auth = u.username ? Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64') : undefined;
  return { host, port, auth, display: `${u.hostname}:${port}` };
}

/** Whether `host` is listed in NO_PROXY (comma-separated names, `.suffix` or `*`). */
export function noProxy(host: string, list: string | undefined): boolean {
  if (!list) return false;
  const h = host.toLowerCase();
  return list
    .split(/[\s,]+/)
    .filter(Boolean)
    .some((e) => {
      const n = e.toLowerCase().replace(/:\d+$/, '');
      if (n === '*') return true;
      const bare = n.replace(/^\*?\./, '');
      return h === bare || h.endsWith('.' + bare);
    });
}

/**
 * A Connect that opens a CONNECT tunnel to `host:port` through the proxy, then calls `inside`
 * with the tunnel's socket (connected) to run the transport in it. The refusals a retry
 * cannot fix (407, 403) close with the code 'proxy_refused'.
 */
export function proxyConnect(o: ProxyOptions, host: string, port: number, inside: (tunnel: net.Socket, h: SocketHandlers) => Socket): Connect {
  const p = parseProxyUrl(o.url);
  const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return (h: SocketHandlers): Socket => {
    let inner: Socket | null = null;
    let closed = false;
    const s = net.connect({ host: p.host, port: p.port });
    const fail = (code: CloseCode, detail: string) => {
      if (closed) return;
      closed = true;
      s.destroy();
      h.onClose(code, detail);
    };
    s.setTimeout(o.timeout ?? 10_000, () => fail('connect_failed', `the proxy ${p.display} did not answer the CONNECT to ${target}`));
    s.on('error', (e: NodeJS.ErrnoException) => fail('connect_failed', `cannot reach the proxy ${p.display}: ${e.code ?? e.message}`));
    s.on('close', () => fail('connect_failed', `the proxy ${p.display} closed the connection before answering the CONNECT to ${target}`));
    s.once('connect', () => {
      s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${p.auth ? `Proxy-Authorization: Basic ${p.auth}\r\n` : ''}\r\n`);
    });
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) fail('connect_failed', `the proxy ${p.display} sent an answer too long to be HTTP`);
        return;
      }
      s.off('data', onData);
      s.removeAllListeners('error');
      s.removeAllListeners('close');
      s.setTimeout(0);
      const status = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head.subarray(0, end).toString('latin1'));
      const code = status ? Number(status[1]) : 0;
      if (code === 407) return fail('proxy_refused', `the proxy wants credentials: --proxy http://user:pass@${p.display} (407${status![2]})`);
      if (code === 403) return fail('proxy_refused', `the proxy refuses CONNECT to ${target} (403${status![2]})`);
      if (code < 200 || code > 299) return fail('connect_failed', `the proxy ${p.display} answered the CONNECT to ${target} with ${status ? status[1] + status[2] : 'something that is not HTTP'}`);
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      if (closed) return;
      inner = inside(s, h);
    };
    s.on('data', onData);
    return {
      write: (data) => (inner ? inner.write(data) : 0),
      close: () => (inner ? inner.close() : fail('end', 'closed')),
    };
  };
}
