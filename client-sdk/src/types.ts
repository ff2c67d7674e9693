// The three seams between the SDK and a platform. Each is a handful of members so that a
// port to a new engine is a page of adapter code: see examples/README.md for the contracts
// in prose and adapters for Node, Moddable XS (ECMA-419) and Espruino.

/** Callbacks the SDK gives a transport when it opens one. */
export interface SocketHandlers {
  /** The connection is established; write() may be called from now on. */
  onOpen(): void;
  /**
   * Bytes arrived, in any chunking. The SDK reads the chunk synchronously and keeps no
   * reference to it after returning, so a platform may reuse its receive buffer.
   */
  onData(chunk: Uint8Array): void;
  /** Space is available again after write() refused data. Optional to call. */
  onWritable(): void;
  /**
   * The connection is gone (end of stream, error or close()). Called at most once.
   * `failure`, when the transport can tell, says that it is a failure of a known kind: the
   * SDK then reports `reason` as it is (no "connection closed: " before it) and passes
   * `failure` on in the 'down' state.
   */
  onClose(reason?: string, failure?: Failure): void;
}

/**
 * A failure an application may want to act on rather than retry blindly:
 * - resolve: the server's name did not resolve; connect: no connection was made (refused,
 *   unreachable). Both usually pass: the SDK retries.
 * - certificate: the server's TLS certificate did not verify (unknown CA, self-signed,
 *   expired...); certificate_name: it verified but is not for the name dialled (`names`:
 *   the names it is for, when known).
 * - not_tls: the server does not speak TLS on that port.
 * - expects_tls: the server answered a plain connection with a TLS alert (the SDK itself
 *   recognises this one).
 * The last four are settings to fix: retrying the same way cannot succeed.
 */
export interface Failure {
  kind: 'resolve' | 'connect' | 'certificate' | 'certificate_name' | 'not_tls' | 'expects_tls';
  names?: string[];
}

/** One open transport connection (TCP, TLS, a WebSocket bridge, a modem's socket...). */
export interface Socket {
  /**
   * Queue bytes for sending. Returns false, taking none of the bytes, when the transport
   * has no room: the SDK then drops the packet and counts it, so memory stays bounded by
   * the transport's own buffer. The transport may keep a reference to `data` instead of
   * copying it; the SDK never modifies bytes it has written.
   */
  write(data: Uint8Array): boolean;
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
   */
  write(buf: Uint8Array, offset: number, length: number): void;
}

/** Time. Milliseconds throughout; handles are opaque to the SDK. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
