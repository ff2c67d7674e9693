// The Connect simplevpn-client dials with: TCP, TLS or a WebSocket (ws, wss), each either
// straight to the server or inside an HTTP proxy's CONNECT tunnel (--proxy, or the
// http_proxy/https_proxy environment variables: args.ts picks). With several servers
// (-s a,b,c), one Connect per server, taken in turn (client-sdk/node/servers.ts).

import net from 'node:net';
import tls from 'node:tls';
import type { Connect } from '../../client-sdk/src/types.js';
import { tcpConnect, wrapNodeSocket } from '../../client-sdk/node/tcp.js';
import { tlsConnect } from '../../client-sdk/node/tls.js';
import { nodeWebSocketConnect } from '../../client-sdk/node/websocket.js';
import { proxyConnect } from '../../client-sdk/node/proxy.js';
import { ServerRotation } from '../../client-sdk/node/servers.js';
import type { ClientSettings, ServerEndpoint } from './args.js';

/**
 * The servers of -s in turn: `connect` for the SDK, `next` the one it dials next. `plainTcp`,
 * when given, makes the Connect of a server reached over plain TCP (no TLS, WebSocket or
 * proxy): the native data path's (native-path.ts).
 */
export function clientConnect(o: ClientSettings, plainTcp?: (host: string, port: number) => Connect): ServerRotation<ServerEndpoint> {
  return new ServerRotation(
    o.servers.map((e) => dial({ ...o, ...e }, plainTcp)),
    o.servers,
  );
}

/** The Connect to one server (o's host, port, url and proxy). */
function dial(o: ClientSettings, plainTcp?: (host: string, port: number) => Connect): Connect {
  const t = o.tls ?? {};
  const ws = o.transport === 'ws' || o.transport === 'wss';
  if (!o.proxy) {
    if (ws) return nodeWebSocketConnect({ url: o.url!, ...t });
    if (o.tls) return tlsConnect({ host: o.host, port: o.port, ...o.tls });
    return plainTcp ? plainTcp(o.host, o.port) : tcpConnect({ host: o.host, port: o.port });
  }
  return proxyConnect({ url: o.proxy }, o.host, o.port, (tunnel, h) => {
    if (ws) return nodeWebSocketConnect({ url: o.url!, ...t, socket: () => tunnel })(h);
    if (!o.tls) return wrapNodeSocket({ socket: tunnel, handlers: h, open: true });
    const s = tls.connect({
      socket: tunnel,
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      servername: t.servername ?? (net.isIP(o.host) ? undefined : o.host),
      ...(t.servername ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(t.servername!, cert) } : {}),
      minVersion: 'TLSv1.2',
    });
    return wrapNodeSocket({ socket: s, handlers: h, readyEvent: 'secureConnect' });
  });
}
