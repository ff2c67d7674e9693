// How clients reach the server: a transport accepts byte streams and hands each one over,
// saying what kind it is; the stream tells its remote address. The TCP and TLS listeners
// (listeners.ts) are one; the WebSocket transport (websocket.ts) carries the same stream
// in WebSocket messages on those listeners; another (QUIC streams, a peer server's link)
// would be another, behind the same hooks.

import type net from 'node:net';

/**
 * On a socket, the object its events go to (an Opening, then the session): one property for
 * each in turn, read by event handlers shared by every socket (a closure per socket and
 * event would cost about 64 bytes each).
 */
export const OWNER = Symbol('owner');

/** tcp and tls: the raw stream; ws and wss: the stream in WebSocket messages, over TCP or TLS. */
export type TransportKind = 'tcp' | 'tls' | 'ws' | 'wss';

/** Where a transport listens. */
export interface BoundAddress extends net.AddressInfo {
  tls: boolean;
}

/** What a transport tells the server. */
export interface TransportHooks {
  /**
   * A new raw connection from `remote` (limits.ts remoteOf: read when it arrives, since
   * Node forgets it after a reset), before anything is read from it or any TLS work; false
   * closes it.
   */
  admit(stream: net.Socket, remote: string): boolean;
  /** A connection ready for the protocol. */
  accept(stream: net.Socket, kind: TransportKind, remote: string): void;
  /** A connection failed before it was usable (a TLS handshake). */
  tlsError(err: Error, remote: string): void;
  /** Plain TCP on the TLS port: the transport has answered with a TLS alert and closes it. */
  plainOnTlsPort(remote: string): void;
  /** The transport itself failed (a listening socket). */
  error(err: Error): void;
}

export interface Transport {
  /** Starts accepting; rejects when it cannot (a port in use, a bad certificate). */
  open(): Promise<void>;
  /** Stops accepting; connections already handed over are the server's. */
  close(): Promise<void>;
  addresses(): BoundAddress[];
}
