// The way from the tun to the server. A batch read from the tun lies back to back in one
// buffer: each run of adjacent packets goes out as one write, without a copy. When the
// socket is full, reading stops (the kernel keeps what arrives in the tun's queue, 4,096
// packets) and the runs the socket refused wait, in order, to go first once it has room
// again: a burst the socket cannot take at once waits instead of being dropped.
import type { Client } from '../../client-sdk/src/client.js';
import type { TunDevice } from '../tun.js';

export class TunSender {
  /** Runs a full socket refused, in order, and their packet counts: at most one batch (reads are paused meanwhile). */
  private readonly held: Uint8Array[] = [];
  private readonly heldPackets: number[] = [];
  /** Packets that waited for a connection that went away: dropped. */
  dropped = 0;

  constructor(
    private readonly tun: TunDevice,
    private readonly client: () => Client,
  ) {}

  /** The tun's onPackets. */
  send(packets: Uint8Array[], count: number): void {
    const c = this.client();
    let i = 0;
    while (i < count) {
      const first = packets[i]!;
      let end = first.byteOffset + first.length;
      let j = i + 1;
      while (j < count && packets[j]!.buffer === first.buffer && packets[j]!.byteOffset === end) end += packets[j++]!.length;
      const run = j === i + 1 ? first : new Uint8Array(first.buffer, first.byteOffset, end - first.byteOffset);
      if (this.held.length || !this.sent(c, run)) {
        this.held.push(run);
        this.heldPackets.push(j - i);
      }
      i = j;
    }
    if (this.held.length) this.tun.pause();
  }

  /** The client's onWritable: what waited goes first, then reading resumes. */
  writable(): void {
    const c = this.client();
    const h = this.held;
    let k = 0;
    while (k < h.length && this.sent(c, h[k]!)) k++;
    if (k) {
      h.splice(0, k);
      this.heldPackets.splice(0, k);
    }
    if (!h.length) this.tun.resume();
  }

  /** The connection is gone (or not yet there): what waited is dropped, and reading goes on (the SDK drops while not connected). */
  reset(): void {
    for (const n of this.heldPackets) this.dropped += n;
    this.held.length = 0;
    this.heldPackets.length = 0;
    this.tun.resume();
  }

  /**
   * Whether `run` is done with: sent, or dropped by the SDK for a reason waiting cannot
   * cure (not connected, malformed), which the SDK counts. A send the full socket refused
   * is the one the SDK does not count (it has onWritable): that one waits.
   */
  private sent(c: Client, run: Uint8Array): boolean {
    const dropped = c.stats.dropped;
    return c.send(run) || c.stats.dropped !== dropped;
  }
}
