// WebSocket on Node 20: the SDK's runtime-neutral webSocketConnect over the `ws` package's
// WebSocket, with what only Node has: TLS options for wss:// (CA, client certificate, the
// name to verify), a connection made beforehand (an HTTP proxy's tunnel), the reasons a
// connection failed in the SDK's close codes (a certificate not trusted, not for the name...)
// instead of the WebSocket API's bare "connect_failed", and, once open, the stream's bytes
// read and written without ws's copies (ws-stream.ts).

import type net from 'node:net';
import tls from 'node:tls';
import WebSocket from 'ws';
import { type WebSocketConstructor, webSocketConnect } from '../src/websocket.js';
import type { Connect, SocketHandlers } from '../src/types.js';
import { explainError } from './tcp.js';
import { WsStream } from './ws-stream.js';

export interface NodeWebSocketOptions {
  /** ws://host:port/path or wss://host:port/path */
  url: string;
  /** For wss://: PEM CA(s), default the system's roots; this client's certificate and key; the name to verify. */
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  servername?: string;
  /** Returns the connection the WebSocket runs over (a proxy's tunnel), else it dials. */
  socket?: () => net.Socket;
}

/** A Connect over the `ws` package's WebSocket. */
export function nodeWebSocketConnect(o: NodeWebSocketOptions): Connect {
  const secure = o.url.startsWith('wss:');
  const host = new URL(o.url).hostname.replace(/^\[|\]$/g, '');
  return (h: SocketHandlers) => {
    let failure: any = null;
    // No permessage-deflate offered: the stream is IP packets, mostly compressed or encrypted
    // already, and the server never accepts it (it would cost a zlib pass per message).
    const options = { ca: o.ca, cert: o.cert, key: o.key, minVersion: 'TLSv1.2', perMessageDeflate: false } as WebSocket.ClientOptions & tls.ConnectionOptions;
    if (o.servername) {
      options.servername = o.servername;
      (options as tls.ConnectionOptions).checkServerIdentity = (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(o.servername!, cert);
    }
    if (o.socket) {
      const sock = o.socket;
      options.createConnection = secure
        ? () => tls.connect({ socket: sock(), ca: o.ca, cert: o.cert, key: o.key, servername: o.servername ?? (isIp(host) ? undefined : host), minVersion: 'TLSv1.2',
            ...(o.servername ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(o.servername!, cert) } : {}) })
        : () => sock();
    }
    class NodeWS extends WebSocket {
      constructor(url: string) {
        super(url, options);
        // The error behind a failed connection, with its code, kept for the close.
        this.on('error', (e) => (failure = e));
        // Messages as Node Buffers (ws's default), whatever the adapter asks for: the
        // ArrayBuffer it asks for elsewhere (the only type browsers and Node share) costs ws
        // a copy of every message that does not fill its own memory, and the adapter takes
        // any Uint8Array as it is.
        Object.defineProperty(this, 'binaryType', { get: () => 'nodebuffer', set: () => {} });
        // Open: the data path is taken over (ws-stream.ts), before the adapter hears of it.
        this.once('open', () => (this.stream = new WsStream(this as unknown as ConstructorParameters<typeof WsStream>[0])));
      }

      private stream: WsStream | null = null;

      override send(data: any, ...rest: any[]): void {
        if (this.stream !== null && this.readyState === WebSocket.OPEN && rest.length === 0 && data instanceof Uint8Array) this.stream.send(data);
        else (super.send as (...a: unknown[]) => void)(data, ...rest);
      }
    }
    const handlers: SocketHandlers = {
      ...h,
      onOpen: () => h.onOpen(),
      onData: (c) => h.onData(c),
      onWritable: () => h.onWritable(),
      onClose: (code, detail, names) => {
        if (code === 'connect_failed' && failure?.code) {
          const [c, d, n] = explainError(failure, false);
          if (c !== 'error') return h.onClose(c, d, n);
        }
        h.onClose(code, detail, names);
      },
    };
    return webSocketConnect(o.url, { WebSocket: NodeWS as unknown as WebSocketConstructor })(handlers);
  };
}

const isIp = (h: string) => /^[\d.]+$/.test(h) || h.includes(':');
