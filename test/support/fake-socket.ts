// What a server Session uses of a net.Socket, in memory: what is written is kept as it was
// handed (views, to tell a copy from the caller's own bytes) and as a copy of its bytes.
import { EventEmitter } from 'node:events';

export class FakeSocket extends EventEmitter {
  readonly views: Uint8Array[] = [];
  readonly out: Uint8Array[] = [];
  writableLength = 0;
  destroyed = false;
  ended = false;
  remoteAddress = '192.0.2.1';
  remotePort = 4000;
  setNoDelay() {}
  cork() {}
  uncork() {}
  write(d: Uint8Array) {
    this.views.push(d);
    this.out.push(Uint8Array.from(d));
    return true;
  }
  end(d?: Uint8Array) {
    if (d) this.out.push(Uint8Array.from(d));
    this.ended = true;
  }
  destroy() {
    this.destroyed = true;
  }
}
