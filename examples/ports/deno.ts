// The Socket seam over Deno's native TCP (Deno.connect). Tested on Deno by
// test/integration/engines/deno.test.ts. Deno's conn.write() is asynchronous and may write
// part of what it is given, so the adapter takes bytes into a queue of bounded size (what it
// cannot take it refuses, and says so with onWritable once the queue has drained) and one
// loop writes the queue out, everything queued in one write. Reads go into one buffer for the
// life of the connection: the SDK keeps nothing of a chunk after onData returns.
//
//   import { Client } from 'simplevpn';
//   const client = new Client({ connect: denoConnect(Deno, '192.0.2.10'), tun, onState });
//
// Run with --allow-net. The SDK's default clock is Deno's own. Deno also runs the project's
// Node adapter (`tcpConnect` from simplevpn/node) unchanged, through its node:net.

import type { CloseCode, Connect } from '../../client-sdk/src/index.js';

/** The part of a Deno.TcpConn this adapter uses. */
export interface DenoConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** The part of the global `Deno` this adapter uses. */
export interface DenoNet {
  connect(options: { hostname: string; port: number }): Promise<DenoConn>;
}

export interface DenoOptions {
  /** Bytes queued unsent before write() takes no more (256 KiB). */
  sendBuffer?: number;
  /** The buffer every chunk is read into (64 KiB). */
  readBuffer?: number;
}

/** A Connect over Deno.connect: pass the global `Deno`. */
export function denoConnect(deno: DenoNet, hostname: string, port = 2002, o: DenoOptions = {}): Connect {
  const limit = o.sendBuffer ?? 256 * 1024;
  const readSize = o.readBuffer ?? 64 * 1024;
  return (h) => {
    let conn: DenoConn | null = null;
    let closed = false;
    let refused = false;
    let writing = false;
    let queued = 0;
    let queue: Uint8Array[] = [];
    const finish = (code: CloseCode, detail?: string) => {
      if (closed) return;
      closed = true;
      try {
        conn?.close();
      } catch {} // already closed by Deno
      h.onClose(code, detail);
    };
    const reads = async (c: DenoConn) => {
      const buf = new Uint8Array(readSize);
      try {
        for (;;) {
          const n = await c.read(buf);
          if (closed) return;
          if (n === null) return finish('end', 'end of stream');
          h.onData(buf.subarray(0, n));
        }
      } catch (e) {
        finish('error', (e as Error).message);
      }
    };
    const flush = async () => {
      if (writing || !conn) return;
      writing = true;
      try {
        while (queue.length && !closed) {
          // Everything queued, in one write: `queued` bytes, as the last write is done.
          let d = queue[0];
          if (queue.length > 1) {
            d = new Uint8Array(queued);
            for (let i = 0, o = 0; i < queue.length; o += queue[i++].length) d.set(queue[i], o);
          }
          queue = [];
          while (d.length && !closed) {
            const n = await conn.write(d);
            d = d.subarray(n);
            queued -= n;
          }
          if (refused && !closed) {
            refused = false;
            h.onWritable(); // may queue more: the loop goes round again
          }
        }
      } catch (e) {
        finish('error', (e as Error).message);
      }
      writing = false;
    };
    deno.connect({ hostname, port }).then(
      (c) => {
        if (closed) return c.close();
        conn = c;
        c.setNoDelay?.(true);
        h.onOpen();
        reads(c);
        flush();
      },
      (e: Error) => finish('connect_failed', e.message),
    );
    return {
      write(data) {
        const n = closed ? 0 : Math.min(data.length, limit - queued);
        if (n < data.length) refused = !closed;
        if (n <= 0) return 0;
        queue.push(n < data.length ? data.subarray(0, n) : data);
        queued += n;
        flush();
        return n;
      },
      close: () => finish('end', 'closed'),
    };
  };
}
