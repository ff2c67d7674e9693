// The Socket seam over node:net (and node:tls, which shares its interface). Lives outside
// the SDK core so the core stays free of Node.

import net from 'node:net';
import { PORT } from '../../protocol/index.js';
import type { Connect, Socket, SocketHandlers } from '../src/types.js';

export interface TcpOptions {
  host: string;
  port?: number;
  /** Bytes the socket may hold unsent before write() refuses packets (256 KiB). */
  sendBuffer?: number;
  /** Size of the buffer every chunk is read into, one per connection (64 KiB): smaller
   * saves memory where many clients share a process, larger reads more per system call. */
  readBuffer?: number;
  /** Makes the underlying connection, for TLS or tests; defaults to net.connect. */
  dial?: (host: string, port: number) => net.Socket;
  /** The event that means "connected": 'connect' for TCP, 'secureConnect' for TLS. */
  readyEvent?: string;
}

/**
 * Wraps a connected-or-connecting node:net socket in the Socket seam. Writes made in one
 * tick are corked and leave in a single writev, so a batch of packets from the TUN costs
 * one system call. `ownReads`: the socket was made with `onread` and delivers its data
 * itself, so no 'data' listener is added.
 */
export function wrapNodeSocket(s: net.Socket, h: SocketHandlers, sendBuffer = 256 * 1024, readyEvent = 'connect', alreadyOpen = false, ownReads = false): Socket {
  let closed = false;
  let corked = false;
  let refused = false;
  const uncork = () => {
    corked = false;
    s.uncork();
  };
  const finish = (why?: string) => {
    if (closed) return;
    closed = true;
    s.destroy();
    h.onClose(why);
  };
  s.setNoDelay(true);
  if (alreadyOpen) queueMicrotask(() => closed || h.onOpen());
  else s.once(readyEvent, () => h.onOpen());
  if (!ownReads) s.on('data', (d: Buffer) => closed || h.onData(d));
  s.on('drain', () => {
    if (refused && !closed) {
      refused = false;
      h.onWritable();
    }
  });
  s.on('end', () => finish('end of stream'));
  s.on('error', (e: NodeJS.ErrnoException) => finish(e.code || e.message));
  s.on('close', () => finish());
  return {
    write(data) {
      if (closed || s.writableLength >= sendBuffer) {
        refused = !closed;
        return false;
      }
      if (!corked) {
        corked = true;
        s.cork();
        process.nextTick(uncork);
      }
      s.write(data);
      return true;
    },
    close() {
      finish();
    },
  };
}

/** A Connect for the SDK that dials TCP (or whatever `dial` returns) on each attempt. */
export function tcpConnect(options: TcpOptions): Connect {
  const port = options.port ?? PORT;
  if (options.dial) {
    const dial = options.dial;
    return (h) => wrapNodeSocket(dial(options.host, port), h, options.sendBuffer, options.readyEvent);
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
    return wrapNodeSocket(sock, h, options.sendBuffer, 'connect', false, true);
  };
}
