// The Socket seam over TLS: the SDK stays transport-agnostic, this adapter is all it takes.

import net from 'node:net';
import tls from 'node:tls';
import { TLS_PORT } from '../../protocol/index.js';
import type { Connect } from '../src/types.js';
import { type TcpOptions, tcpConnect } from './tcp.js';

export interface TlsOptions extends Omit<TcpOptions, 'dial' | 'readyEvent'> {
  /** PEM CA(s) that signed the server's certificate; default: the system's roots. */
  ca?: string | Buffer;
  /** PEM certificate and key of this client, for servers that require mutual TLS. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name to verify the server's certificate against (default: host, when it is a name). */
  servername?: string;
}

/** A Connect that dials TLS (port 2003 unless given) and verifies the server. */
export function tlsConnect(o: TlsOptions): Connect {
  return tcpConnect({
    ...o,
    port: o.port ?? TLS_PORT,
    readyEvent: 'secureConnect',
    dial: (host, port) =>
      tls.connect({
        host,
        port,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        servername: o.servername ?? (net.isIP(host) ? undefined : host),
        // With a servername, the certificate must carry that name whatever host was dialled.
        ...(o.servername ? { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(o.servername!, cert) } : {}),
        minVersion: 'TLSv1.2',
      }),
  });
}
