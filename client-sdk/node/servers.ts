// Several servers of one cluster behind one Connect: the SDK core dials whatever Connect it
// is given on each attempt, so following a cluster needs nothing of the core. The servers
// share their leases (through etcd), so the SDK's request on the next server, with the
// address and lease token it had, keeps the address.
//
// The policy: stay on a server while its connection lasts; once a connection ends for any
// reason (the server died or refused, the connection failed or timed out), the next attempt
// dials the next server, round the list. The core's backoff spaces the attempts as for one
// server, so a list of dead servers is not hammered. A name with several addresses needs no
// list: node:net tries each of its addresses in turn on every attempt (autoSelectFamily).

import type { Connect, SocketHandlers } from '../src/types.js';

export class ServerRotation<T = unknown> {
  private at = 0;

  /**
   * `connects[i]` dials server i; `servers`, when given, says which server each is (for log
   * lines: see `next`).
   */
  constructor(
    private readonly connects: Connect[],
    readonly servers: T[] = [],
  ) {
    if (!connects.length) throw new Error('ServerRotation needs at least one server');
  }

  /** Which server the next attempt dials (an index into the list). */
  get next(): number {
    return this.at;
  }

  /** The Connect to give the SDK's Client. */
  readonly connect: Connect = (h: SocketHandlers) => {
    const i = this.at;
    // Only the end of a connection to the current server moves the rotation on.
    const move = () => this.at === i && (this.at = (i + 1) % this.connects.length);
    try {
      return this.connects[i]!({
        onOpen: () => h.onOpen(),
        onData: (chunk) => h.onData(chunk),
        onWritable: () => h.onWritable(),
        onClose: (code, detail, names) => {
          move();
          h.onClose(code, detail, names);
        },
      });
    } catch (err) {
      // The SDK reports a Connect that throws as a failed connection: the next one is next.
      move();
      throw err;
    }
  };
}
