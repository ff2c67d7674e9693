// The Socket seam over Bun's native TCP (Bun.connect). Tested on Bun by
// test/integration/engines/bun.test.ts. Bun's socket.write() sends what the kernel takes at
// once and returns that count, buffering nothing: exactly what the SDK's write() returns, so
// the SDK keeps the untaken tail of a packet and writes it on the 'drain' that follows.
//
//   import { Client } from 'simplevpn';
//   const client = new Client({ connect: bunConnect(Bun, '192.0.2.10'), tun, onState });
//
// The SDK's default clock (setTimeout, performance.now) is Bun's own. Bun also runs the
// project's Node adapter (`tcpConnect` from simplevpn/node) unchanged.

import type { CloseCode, Connect } from '../../client-sdk/src/index.js';

/** The part of a Bun Socket this adapter uses. */
export interface BunSocket {
  /** Sends what it can now; returns the bytes sent (-1 once closed), buffering none. */
  write(data: Uint8Array): number;
  end(): void;
  setNoDelay?(noDelay?: boolean): boolean;
}

/** Bun.connect's socket handlers (the ones this adapter sets). */
export interface BunSocketHandlers {
  open(s: BunSocket): void;
  data(s: BunSocket, data: Uint8Array): void;
  drain(s: BunSocket): void;
  end(s: BunSocket): void;
  close(s: BunSocket, error?: Error): void;
  error(s: BunSocket, error: Error): void;
  connectError(s: BunSocket, error: Error): void;
}

/** The part of the global `Bun` this adapter uses. */
export interface BunNet {
  connect(options: { hostname: string; port: number; socket: BunSocketHandlers }): Promise<BunSocket>;
}

/** A Connect over Bun.connect: pass the global `Bun`. */
export function bunConnect(bun: BunNet, hostname: string, port = 2002): Connect {
  return (h) => {
    let sock: BunSocket | null = null;
    let closed = false;
    let refused = false;
    const finish = (code: CloseCode, detail?: string) => {
      if (closed) return;
      closed = true;
      sock?.end();
      h.onClose(code, detail);
    };
    bun
      .connect({
        hostname,
        port,
        socket: {
          open(s) {
            if (closed) return s.end();
            sock = s;
            s.setNoDelay?.(true);
            h.onOpen();
          },
          data: (_s, d) => closed || h.onData(d),
          drain() {
            if (refused && !closed) {
              refused = false;
              h.onWritable();
            }
          },
          end: () => finish('end', 'end of stream'),
          close: (_s, e) => finish(e ? 'error' : 'end', e?.message),
          error: (_s, e) => finish(sock ? 'error' : 'connect_failed', e.message),
          connectError: (_s, e) => finish('connect_failed', e.message),
        },
      })
      .catch((e: Error) => finish('connect_failed', e.message));
    return {
      write(data) {
        if (closed || !sock) return 0;
        const n = sock.write(data);
        if (n < data.length) refused = true;
        return n > 0 ? n : 0;
      },
      close: () => finish('end', 'closed'),
    };
  };
}
