// The two clients of the warm-up (warm-up.ts): raw sockets speaking the protocol as the
// Linux client does (an extension request for a static address and an MTU, then IPv4
// packets), in the server's own process. They are loopback TCP connections of this process,
// so Node's stream code here meets connected sockets besides the server's accepted ones;
// clients in a worker thread (an isolate of its own) left the first pings no cheaper and
// cost twice the CPU (docs/performance.md, RTT).

import { type Socket, connect } from 'node:net';
import { DST, KIND_REPLY, extKind, readU32 } from '../../../protocol/index.js';

/** What the clients send, and to whom. */
export interface ClientsJob {
  port: number;
  /** Each client's address request, and the address its reply must grant. */
  requests: [Uint8Array, Uint8Array];
  addresses: [number, number];
  /** A ping-sized packet from client a to b, and from b to a. */
  pingAB: Uint8Array;
  pingBA: Uint8Array;
  /** Full-size packets from a to b, back to back: one burst. */
  burst: Uint8Array;
  pings: number;
  bursts: number;
}

/**
 * Connects both clients (into `sockets`, which the caller destroys whatever happens), has
 * each granted its address, then exchanges: half the pings, the bursts (each answered by
 * one ping-sized packet), the other half. One message in flight at a time, so that the
 * server reads a message a chunk, as it does a ping's or a burst's on a quiet link.
 */
export async function runClients(job: ClientsJob, sockets: Socket[]): Promise<void> {
  const connectClient = (i: number): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port: job.port, noDelay: true });
      sockets.push(s);
      // Kept for the socket's life: a rejection after it resolved does nothing, and an
      // error never finds the socket without a listener.
      let got = Buffer.alloc(0);
      s.on('error', (err) => reject(new Error(`client ${i + 1}: ${err.message}`)));
      s.once('close', () => reject(new Error(`client ${i + 1}: the server closed the connection before its reply`)));
      const onData = (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length < 4 || got.length < got.readUInt16BE(2)) return;
        s.off('data', onData);
        if (extKind(got) === KIND_REPLY && readU32(got, DST) === job.addresses[i]) resolve(s);
        else reject(new Error(`client ${i + 1}: the server did not grant the address asked for`));
      };
      s.on('data', onData);
      s.write(job.requests[i]);
    });
  const exchange = (a: Socket, b: Socket, toB: Uint8Array, toA: Uint8Array, rounds: number): Promise<void> =>
    new Promise((resolve) => {
      if (rounds <= 0) return resolve();
      let atA = 0;
      let atB = 0;
      let left = rounds;
      const onB = (chunk: Buffer) => {
        atB += chunk.length;
        for (; atB >= toB.length; atB -= toB.length) b.write(toA);
      };
      const onA = (chunk: Buffer) => {
        atA += chunk.length;
        for (; atA >= toA.length; atA -= toA.length) {
          if (--left > 0) a.write(toB);
          else {
            a.off('data', onA);
            b.off('data', onB);
            resolve();
          }
        }
      };
      b.on('data', onB);
      a.on('data', onA);
      a.write(toB);
    });
  const [a, b] = await Promise.all([connectClient(0), connectClient(1)]);
  const lost = new Promise<never>((_, reject) => {
    for (const s of [a, b]) s.once('close', () => reject(new Error('the throw-away server closed a client connection')));
  });
  const half = Math.ceil(job.pings / 2);
  await Promise.race([lost, exchange(a, b, job.pingAB, job.pingBA, half)]);
  await Promise.race([lost, exchange(a, b, job.burst, job.pingBA, job.bursts)]);
  await Promise.race([lost, exchange(a, b, job.pingAB, job.pingBA, job.pings - half)]);
}
