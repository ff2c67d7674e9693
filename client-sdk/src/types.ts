// The three seams between the SDK and a platform. Each is a handful of members so that a
// port to a new engine is a page of adapter code: see examples/README.md for the contracts
// in prose and adapters for Node, Moddable XS (ECMA-419) and Espruino.

/**
 * Why a connection ended, as the transport tells the SDK:
 * - end: the stream ended (the server closed it, or the socket closed without an error).
 *   A 2013 server refuses an address this way, during the address request.
 * - error: any other failure of an established connection (a reset, a TLS alert...).
 * - resolve_failed: the server's name did not resolve; connect_failed: no connection was
 *   made (refused, unreachable). Both usually pass: the SDK retries.
 * - certificate: the server's TLS certificate did not verify (unknown CA, self-signed,
 *   expired...); certificate_name: it verified but is not for the name dialled.
 * - not_tls: the server does not speak TLS on that port.
 * - proxy_refused: an HTTP proxy on the way refused the tunnel (wants credentials, or
 *   forbids the destination): retrying the same way cannot succeed.
 */
export type CloseCode = 'end' | 'error' | 'resolve_failed' | 'connect_failed' | 'certificate' | 'certificate_name' | 'not_tls' | 'proxy_refused';

/** Callbacks the SDK gives a transport when it opens one. */
export interface SocketHandlers {
  /** The connection is established; write() may be called from now on. */
  onOpen(): void;
  /**
   * Bytes arrived, in any chunking. The SDK reads the chunk synchronously and keeps no
   * reference to it after returning, so a platform may reuse its receive buffer.
   */
  onData(chunk: Uint8Array): void;
  /** Space is available again after write() took less than it was given. */
  onWritable(): void;
  /**
   * The connection is gone. Called at most once. `code` says how (the SDK decides from it
   * alone, never from the text); `detail` is text for people ("end of stream",
   * "ECONNRESET", what the TLS library said); `names`, with certificate_name, the names
   * the certificate is for, when known.
   */
  onClose(code: CloseCode, detail?: string, names?: string[]): void;
}

/** One open transport connection (TCP, TLS, a WebSocket bridge, a modem's socket...). */
export interface Socket {
  /**
   * Queue bytes for sending; returns how many it took from the start of `data`:
   * `data.length` when all, fewer (0 included) when the transport has no room for more.
   * After taking less than all, the transport calls onWritable() once it has room again.
   * The SDK keeps the untaken tail of a packet and writes it then; whole packets that do
   * not fit are dropped and counted, so memory stays bounded by the transport's own buffer
   * plus at most one packet. The transport may keep a reference to the bytes it took
   * instead of copying them; the SDK never modifies bytes it has written.
   */
  write(data: Uint8Array): number;
  /** Close the connection. onClose follows (possibly synchronously). Idempotent. */
  close(): void;
}

/** Opens a new connection to the server and reports on it through the handlers. */
export type Connect = (handlers: SocketHandlers) => Socket;

/** Where packets from the VPN go: a TUN device, or a device's own tiny IP stack. */
export interface Tun {
  /**
   * One IP packet addressed to this client: buf[offset, offset + length). `buf` is
   * usually the received chunk itself, so the packet reaches you without a copy or even a
   * view being made; it is valid only during the call (transports may read the next chunk
   * into the same memory): copy what you keep. On Node, `buf` may be a Buffer, whose
   * slice() makes a view, not a copy: use Uint8Array.prototype.slice or Buffer.from.
   * Returns false when the packet was dropped (a full device, a stack with no room): the
   * SDK counts it in stats.rxDropped. The same packet-sink shape as the server's ports
   * and the Linux tun device; returning nothing counts as taken.
   */
  write(buf: Uint8Array, offset: number, length: number): boolean | void;
}

/** Time. Milliseconds throughout; handles are opaque to the SDK. */
export interface Clock {
  /** Milliseconds from any origin; monotonic where the platform can (performance.now()). */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
