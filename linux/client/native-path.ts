// The native data path of the Linux client (issue 15): once the session is up on plain TCP,
// the packets stop crossing JavaScript. The socket is handed to the tun device's attached
// socket (linux/native/splice.c), which moves every packet between the tun and the socket in
// C; JavaScript keeps the session: the SDK still reads the keepalive echoes and the server's
// messages, writes its keepalives, and sees the connection end, so its timers, reconnects
// and states work as on the JavaScript path.
//
// NativeSocket is the SDK's Socket for plain TCP (as client-sdk/node/tcp.ts tcpConnect, with
// the same reused read buffer) with one difference: it hands the SDK whole frames only,
// holding the start of an unfinished frame itself, so that when the session is ready the
// SDK's framer holds nothing and those bytes can go to attach() as its initial bytes. Then:
// Node's reading stops (socket.pause(), synchronous for a socket read with `onread`), the
// bytes Node still has to send go first, and the tun attaches to the socket's descriptor.
// While attached, the SDK's writes go through tun.sendRaw() (behind the packets C has queued,
// so frames never interleave); the frames C hands up are given to the SDK as chunks; the
// end of the stream or an error closes the socket and reaches the SDK as onClose, which
// reconnects as it always does; the next socket attaches once that session is ready. The SDK
// counts any bytes received as a sign of life: C says that packets came at most once a
// second, given to the SDK as an empty chunk, so that no keepalive goes out while they flow.
//
// Only for plain TCP: TLS, WebSocket and proxied transports keep the JavaScript path, as does
// SIMPLEVPN_NATIVE_PATH=0, and a tun with offloads whose server does not take super-packets
// (splitting them stays in linux/tun-offload.ts).

import net from 'node:net';
import { MAX_FRAME, frameLength } from '../../protocol/index.js';
import type { CloseCode, Connect, Socket, SocketHandlers } from '../../client-sdk/src/types.js';
import { explainError, wrapNodeSocket } from '../../client-sdk/node/tcp.js';
import type { TunDevice } from '../tun.js';

/** Whether the native path is on: SIMPLEVPN_NATIVE_PATH=0 turns it off. */
export function nativePathEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SIMPLEVPN_NATIVE_PATH !== '0';
}

// What Node reads each chunk into, one buffer per connection (as tcpConnect's default).
const READ_BUFFER = 64 * 1024;
const NOTHING = new Uint8Array(0);
// While Node still sends bytes written before the session was ready, the attachment waits.
const SEND_WAIT_MS = 1;

export class NativePath {
  private current: NativeSocket | null = null;

  constructor(
    private readonly tun: TunDevice,
    /** Writing to the tun failed while attached: the device is gone. */
    private readonly onTunError: (err: Error) => void,
    /** attach() refused (the JavaScript path goes on): for the log. */
    private readonly onAttachFailed: (err: Error) => void,
  ) {}

  /** A Connect that dials host:port over plain TCP with a socket that can attach. */
  connect(host: string, port: number): Connect {
    return (h) => (this.current = new NativeSocket(this, host, port, h));
  }

  /**
   * The session of the latest connection is ready: returns whether its packets take the
   * native path. Not with offloads unless super-packets travel whole (`superFrames`).
   */
  ready(superFrames: boolean): boolean {
    const s = this.current;
    if (!s || s.closed || (this.tun.offload && !superFrames)) return false;
    s.attachWhenIdle(superFrames);
    return true;
  }

  /** @internal */
  attach(s: NativeSocket, fd: number, initial: Uint8Array, superFrames: boolean): boolean {
    try {
      this.tun.attach(fd, initial, superFrames, s);
      return true;
    } catch (err: any) {
      this.onAttachFailed(err);
      return false;
    }
  }

  /** @internal */
  get device(): TunDevice {
    return this.tun;
  }

  /** @internal */
  tunFailed(err: Error): void {
    this.onTunError(err);
  }
}

class NativeSocket implements Socket {
  closed = false;
  private readonly sock: net.Socket;
  private readonly inner: Socket;
  // The start of an unfinished frame (held bytes, its length once known as `need`).
  private readonly part = new Uint8Array(MAX_FRAME);
  private held = 0;
  private need = 0;
  private reading = false;
  private wantAttach = false;
  private superFrames = false;
  private attached = false;
  private reported = false;

  constructor(
    private readonly owner: NativePath,
    host: string,
    port: number,
    private readonly h: SocketHandlers,
  ) {
    const onread = {
      buffer: Buffer.allocUnsafe(READ_BUFFER),
      callback: (n: number, buf: Uint8Array) => {
        if (!this.sock.destroyed && !this.closed) this.chunk(buf, n);
        return true;
      },
    };
    this.sock = net.connect({ host, port, onread });
    this.inner = wrapNodeSocket({ socket: this.sock, ownReads: true, handlers: { ...h, onClose: (code, detail, names) => this.report(code, detail, names) } });
  }

  write(data: Uint8Array): number {
    if (this.closed) return 0;
    return this.attached ? this.owner.device.sendRaw(data) : this.inner.write(data);
  }

  close(): void {
    this.closed = true;
    this.detach();
    this.inner.close();
  }

  /** The session is ready: attach once this read is done and Node has sent what it holds. */
  attachWhenIdle(superFrames: boolean): void {
    this.wantAttach = true;
    this.superFrames = superFrames;
    if (!this.reading) this.startAttach();
  }

  // ---- AttachHandlers: the attached socket's events ----

  onData(chunk: Uint8Array): void {
    if (!this.closed) this.h.onData(chunk);
  }

  onWritable(): void {
    if (!this.closed) this.h.onWritable();
  }

  onActivity(): void {
    if (!this.closed) this.h.onData(NOTHING);
  }

  onEnd(): void {
    this.lost('end', 'end of stream');
  }

  onError(err: Error): void {
    this.lost(...explainError(err as NodeJS.ErrnoException, true));
  }

  onTunError(err: Error): void {
    this.owner.tunFailed(err);
  }

  // ---- reading on the JavaScript path ----

  private chunk(buf: Uint8Array, n: number): void {
    this.reading = true;
    try {
      this.split(buf, n);
    } finally {
      this.reading = false;
    }
    if (this.wantAttach && !this.attached && !this.closed) this.startAttach();
  }

  /** Hands the SDK the whole frames of buf[0, n), and keeps the start of an unfinished one. */
  private split(buf: Uint8Array, n: number): void {
    const part = this.part;
    const h = this.h;
    let pos = 0;
    if (this.held) {
      let need = this.need;
      // The length is not known yet: a byte at a time, until the header tells it (6 at most).
      while (need === 0 && pos < n) {
        part[this.held++] = buf[pos++]!;
        need = frameLength(part, 0, this.held, MAX_FRAME);
      }
      if (need < 0) return h.onData(part.subarray(0, this.held)); // no frame: the SDK's framer says why
      this.need = need;
      if (need === 0) return;
      const take = Math.min(need - this.held, n - pos);
      part.set(buf.subarray(pos, pos + take), this.held);
      this.held += take;
      pos += take;
      if (this.held < need) return;
      this.held = this.need = 0;
      h.onData(part.subarray(0, need));
      if (this.closed) return;
    }
    let end = pos;
    let f = 0;
    while (end < n) {
      f = frameLength(buf, end, n - end, MAX_FRAME);
      if (f <= 0 || end + f > n) break;
      end += f;
    }
    if (f < 0) return h.onData(buf.subarray(pos, n));
    if (end > pos) h.onData(buf.subarray(pos, end));
    if (end < n && !this.closed) {
      part.set(buf.subarray(end, n));
      this.held = n - end;
      this.need = f;
    }
  }

  // ---- attaching ----

  private startAttach(): void {
    if (this.closed || this.attached) return;
    this.sock.pause(); // stops libuv's reads now: nothing more comes through onread
    this.tryAttach();
  }

  private tryAttach = (): void => {
    if (this.closed || this.attached) return;
    // Bytes written before (the request, a corked write of this tick) leave first.
    if (this.sock.writableLength > 0) {
      setTimeout(this.tryAttach, SEND_WAIT_MS);
      return;
    }
    const fd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0 || !this.owner.attach(this, fd, this.part.subarray(0, this.held), this.superFrames)) {
      this.wantAttach = false;
      this.sock.resume();
      return;
    }
    this.held = this.need = 0;
    this.attached = true;
  };

  private detach(): void {
    if (!this.attached) return;
    this.attached = false;
    this.owner.device.detach();
  }

  /** The attached socket ended or failed: close it and tell the SDK why. */
  private lost(code: CloseCode, detail?: string, names?: string[]): void {
    this.detach();
    this.report(code, detail, names);
    this.close();
  }

  private report(code: CloseCode, detail?: string, names?: string[]): void {
    if (this.reported) return;
    this.reported = true;
    this.detach();
    this.h.onClose(code, detail, names);
  }
}
