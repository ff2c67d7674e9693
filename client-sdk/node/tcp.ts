// The Socket seam over node:net (and node:tls, which shares its interface). Lives outside
// the SDK core so the core stays free of Node.

import net from 'node:net';
import { PORT } from '../../protocol/index.js';
import type { CloseCode, Connect, Socket, SocketHandlers } from '../src/types.js';

export interface TcpOptions {
  host: string;
  port?: number;
  /** Bytes the socket may hold unsent before write() takes no more (256 KiB). */
  sendBuffer?: number;
  /** Size of the buffer every chunk is read into, one per connection (64 KiB): smaller
   * saves memory where many clients share a process, larger reads more per system call. */
  readBuffer?: number;
  /** Makes the underlying connection, for TLS or tests; defaults to net.connect. */
  dial?: (host: string, port: number) => net.Socket;
  /** The event that means "connected": 'connect' for TCP, 'secureConnect' for TLS. */
  readyEvent?: string;
}

const MEANING: Record<string, string> = {
  EAI_AGAIN: 'temporary DNS failure',
  ENOTFOUND: 'no such host',
  EAI_FAIL: 'DNS failure',
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'address not available',
};

// The server's certificate did not verify: OpenSSL's X509_V_ERR_* as Node names them.
const CERT_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'UNABLE_TO_GET_CRL',
  'CRL_HAS_EXPIRED',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);
const CERT_WHY: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is self-signed and not trusted',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a CA that is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'is signed by a CA that is not trusted',
  UNABLE_TO_GET_ISSUER_CERT: 'is signed by a CA that is not trusted',
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
};

// The answer to the ClientHello was not TLS. ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE is the
// alert a simplevpn server's plain port sends back for a ClientHello.
const NOT_TLS_CODES = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_SSLV3_ALERT_UNEXPECTED_MESSAGE']);

/** The names a certificate (node:tls's PeerCertificate) is for: its SAN entries, else its CN. */
function certNames(cert: { subjectaltname?: string; subject?: { CN?: string | string[] } } | undefined): string[] {
  const san = cert?.subjectaltname;
  if (san) return san.split(', ').map((e) => e.replace(/^(DNS|IP Address):/, ''));
  const cn = cert?.subject?.CN;
  return cn === undefined ? [] : ([] as string[]).concat(cn);
}

/**
 * Why a socket failed: the close code for the SDK, text for people, and for a certificate
 * that is not for the name dialled, the names it is for. `opened`: the connection (or TLS
 * session) was established.
 */
export function explainError(e: NodeJS.ErrnoException & { hostname?: string; address?: string; port?: number; host?: string; cert?: any }, opened: boolean): [CloseCode, string, string[]?] {
  // A name with several addresses, none of which answered: node:net tried each in turn
  // (autoSelectFamily) and reports them together. Each one's reason, one line.
  const all = (e as { errors?: Array<typeof e> }).errors;
  if (!opened && all?.length && all.every((x) => x.syscall === 'connect')) return ['connect_failed', all.map((x) => explainError(x, false)[1]).join('; ')];
  const code = e.code || '';
  const why = (meaning: string | undefined) => `${meaning || e.message} (${code || e.message})`;
  if (!opened && e.syscall === 'getaddrinfo') return ['resolve_failed', `cannot resolve ${e.hostname}: ${why(MEANING[code] || 'DNS failure')}`];
  if (!opened && e.syscall === 'connect') {
    const where = e.address === undefined ? '' : ` to ${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`;
    return ['connect_failed', `cannot connect${where}: ${why(MEANING[code])}`];
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') {
    const names = certNames(e.cert);
    return ['certificate_name', `the server's certificate is not for ${e.host ?? 'the name dialled'}${names.length ? ': it is for ' + names.join(', ') : ''} (${code})`, names];
  }
  if (CERT_CODES.has(code)) return ['certificate', `the server's certificate ${CERT_WHY[code] ?? 'did not verify: ' + e.message} (${code})`];
  if (!opened && NOT_TLS_CODES.has(code)) return ['not_tls', `the server does not speak TLS on this port (${code})`];
  return ['error', code || e.message];
}

export interface WrapOptions {
  /** A node:net (or node:tls) socket, connected or connecting. */
  socket: net.Socket;
  handlers: SocketHandlers;
  /** Bytes the socket may hold unsent before write() takes no more (256 KiB). */
  sendBuffer?: number;
  /** The event that means "connected": 'connect' for TCP (the default), 'secureConnect' for TLS. */
  readyEvent?: string;
  /** The socket is connected already: onOpen follows on the next microtask. */
  open?: boolean;
  /** The socket was made with `onread` and delivers its data itself: no 'data' listener is added. */
  ownReads?: boolean;
}

/**
 * Wraps a node:net socket in the Socket seam. Writes made in one tick are corked and leave
 * in a single writev, so a batch of packets from the TUN costs one system call. Node
 * buffers what it is given, so write() takes all of a packet or, past `sendBuffer`, none.
 */
export function wrapNodeSocket(o: WrapOptions): Socket {
  const { socket: s, handlers: h } = o;
  const sendBuffer = o.sendBuffer ?? 256 * 1024;
  let closed = false;
  let opened = Boolean(o.open);
  let corked = false;
  let refused = false;
  const uncork = () => {
    corked = false;
    s.uncork();
  };
  const finish = (code: CloseCode, detail?: string, names?: string[]) => {
    if (closed) return;
    closed = true;
    s.destroy();
    h.onClose(code, detail, names);
  };
  s.setNoDelay(true);
  if (opened) queueMicrotask(() => closed || h.onOpen());
  else
    s.once(o.readyEvent ?? 'connect', () => {
      opened = true;
      h.onOpen();
    });
  if (!o.ownReads) s.on('data', (d: Buffer) => closed || h.onData(d));
  s.on('drain', () => {
    if (refused && !closed) {
      refused = false;
      h.onWritable();
    }
  });
  s.on('end', () => finish('end', 'end of stream'));
  s.on('error', (e: NodeJS.ErrnoException) => finish(...explainError(e, opened)));
  // Closed with neither an end nor an error: ended, as far as anyone can tell.
  s.on('close', () => finish('end'));
  return {
    write(data) {
      if (closed || s.writableLength >= sendBuffer) {
        refused = !closed;
        return 0;
      }
      if (!corked) {
        corked = true;
        s.cork();
        process.nextTick(uncork);
      }
      s.write(data);
      return data.length;
    },
    close() {
      finish('end');
    },
  };
}

/** A Connect for the SDK that dials TCP (or whatever `dial` returns) on each attempt. */
export function tcpConnect(options: TcpOptions): Connect {
  const port = options.port ?? PORT;
  if (options.dial) {
    const dial = options.dial;
    return (handlers) => wrapNodeSocket({ socket: dial(options.host, port), handlers, sendBuffer: options.sendBuffer, readyEvent: options.readyEvent });
  }
  // Plain TCP reads every chunk into one buffer for the life of the socket, handed to the
  // SDK as is: the SDK keeps nothing of a chunk after onData returns. No buffer is made per
  // read and Node's stream machinery is skipped, which shortens every packet's way in.
  return (h) => {
    const onread = {
      buffer: Buffer.allocUnsafe(options.readBuffer ?? 64 * 1024),
      // wrapNodeSocket destroys the socket before it reports the close: nothing after that.
      callback: (n: number, buf: Uint8Array) => {
        if (!sock.destroyed) h.onData(buf.subarray(0, n));
        return true;
      },
    };
    const sock: net.Socket = net.connect({ host: options.host, port, onread });
    return wrapNodeSocket({ socket: sock, handlers: h, sendBuffer: options.sendBuffer, ownReads: true });
  };
}
