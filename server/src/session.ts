// One client connection: framing of its stream, switching of its packets, its send queue.
// This is the hot path. Per chunk: one framer pass, one routing lookup per frame, frames
// that lie next to each other in the chunk and go to the same peer merged into one view,
// no copies. Per session, no closures: socket events go through shared handlers.

import type { Socket } from 'node:net';
import { ALL, ANY, DST, SRC, readU32, E_TOO_LONG, Framer, SEED_MTU } from '../../protocol/index.js';
import type { ResolvedConfig } from './config.js';
import type { Metrics } from './metrics.js';
import type { Peer, RoutingTable } from './routing-table.js';

/** What a session needs from its server. */
export interface Hub {
  readonly cfg: ResolvedConfig;
  readonly metrics: Metrics;
  readonly table: RoutingTable<Session>;
  /** Writes one packet, buf[offset, offset + length), to the server's tun; null without one. */
  toTun: ((buf: Uint8Array, offset: number, length: number) => void) | null;
  /** An address request (destination 0.0.0.0) arrived on `s`. */
  request(s: Session, frame: Uint8Array): void;
  /** A data packet whose source is not the sender's address was dropped. */
  spoofed(s: Session, src: number): void;
  /** b[o, o + n) is larger than `peer`'s MTU; `from` sent it (null: the server's tun). */
  tooBig(from: Session | null, b: Uint8Array, o: number, n: number, peer: Session): void;
  /** `s` is closed: release what it held. */
  ended(s: Session, code: string, detail: string): void;
}

/** Why sessions end, as counted in simplevpn_disconnects_total. */
export type EndCode =
  | 'client_closed'
  | 'socket_error'
  | 'idle_timeout'
  | 'handshake_timeout'
  | 'malformed_frame'
  | 'frame_too_long'
  | 'refused'
  | 'credentials_revoked'
  | 'replaced'
  | 'shutdown';

const SESSION = Symbol('session');

export class Session implements Peer {
  readonly since = Date.now();
  lastRx = this.since;
  /** Assigned VPN address, 0 until the request is granted. */
  address = 0;
  /** Spoke the extension (true) or the seed protocol (false). */
  extended = false;
  /** The name the client gave, if any. */
  name = '';
  /** The auth file id it proved, when the server requires credentials. */
  authId = '';
  /** The token of its last reply (base64url): presenting it takes this session's address over. */
  lease: string | null = null;
  /** Its credentials are being checked: further requests wait. */
  pending = false;
  rxBytes = 0;
  rxPackets = 0;
  txBytes = 0;
  txPackets = 0;
  drops = 0;
  closed = false;
  /** Largest packet this client takes (granted at its request). */
  mtu = SEED_MTU;
  /** Frames to this peer may be merged into one write. Not for seed clients, which treat
   * each read() as one packet and would lose the rest of a merged write. */
  get coalesce(): boolean {
    return this.extended;
  }
  /** Rate limit of the spoofing log line: when it was last written, and how many since. */
  spoofLoggedAt = 0;
  spoofUnlogged = 0;
  private corked = false;
  private readonly framer: Framer;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    readonly remote: string,
    private readonly hub: Hub,
  ) {
    this.framer = new Framer(hub.cfg.maxFrame);
    (socket as any)[SESSION] = this;
    socket.setNoDelay(true);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('end', onEnd);
  }

  /** Frames of one received chunk. */
  onData(chunk: Uint8Array): void {
    const hub = this.hub;
    const m = hub.metrics;
    const table = hub.table;
    const f = this.framer;
    let me = this.address;
    this.lastRx = Date.now();
    f.push(chunk);
    // The current run: frames adjacent in `chunk`, all for `run`.
    let run: Session | undefined;
    let runStart = 0;
    let runEnd = 0;
    let runPackets = 0;
    for (let len; (len = f.advance()) > 0; ) {
      // The frame is b[o, o + len): no view is made unless it has to leave on its own.
      const b = f.buf;
      const o = f.start;
      if (b[o] >> 4 !== 4) {
        m.drops.not_ipv4++;
        continue;
      }
      const src = readU32(b, o + SRC);
      const dst = readU32(b, o + DST);
      if (src !== me || me === ANY || dst === ANY) {
        this.control(b.subarray(o, o + len), src, dst);
        if (this.closed) return;
        me = this.address; // a request may just have assigned it
        continue;
      }
      this.rxPackets++;
      this.rxBytes += len;
      m.rxPackets++;
      m.rxBytes += len;
      const peer = table.lookup(dst);
      if (peer === undefined) {
        if (hub.toTun !== null) hub.toTun(b, o, len);
        else m.drops.no_route++;
      } else if (len > peer.mtu) {
        hub.tooBig(this, b, o, len, peer);
      } else if (peer.coalesce && b === chunk) {
        if (peer === run && o === runEnd) {
          runEnd += len;
          runPackets++;
          continue;
        }
        if (run !== undefined) run.deliver(chunk.subarray(runStart, runEnd), runPackets);
        run = peer;
        runStart = o;
        runEnd = o + len;
        runPackets = 1;
      } else {
        peer.deliver(b.subarray(o, o + len), 1);
      }
    }
    if (run !== undefined) run.deliver(chunk.subarray(runStart, runEnd), runPackets);
    table.flush();
    if (f.error !== null) this.end(f.error === E_TOO_LONG ? 'frame_too_long' : 'malformed_frame', f.error);
  }

  /** Everything that is not a data packet from the assigned address. */
  private control(p: Uint8Array, src: number, dst: number): void {
    const m = this.hub.metrics;
    if (src === ALL && dst === ALL) {
      // Keepalive: echoed unaltered.
      m.keepalives++;
      this.writeNow(p);
    } else if (dst === ANY) {
      this.hub.request(this, p);
    } else if (this.address === ANY) {
      m.drops.unassigned++;
      this.drops++;
    } else {
      m.drops.spoofed_source++;
      this.drops++;
      this.hub.spoofed(this, src);
    }
  }

  /** Writes frames towards this client, within its send-queue cap. */
  deliver(data: Uint8Array, packets: number): void {
    const s = this.socket;
    const m = this.hub.metrics;
    if (this.closed || s.writableLength + data.length > this.hub.cfg.sendQueue) {
      m.drops.queue_full += packets;
      this.drops += packets;
      return;
    }
    if (this.coalesce && !this.corked) {
      this.corked = true;
      s.cork();
      this.hub.table.corkedBy(this);
    }
    s.write(data);
    this.txPackets += packets;
    this.txBytes += data.length;
    m.txPackets += packets;
    m.txBytes += data.length;
  }

  uncork(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }

  /** A control message to this client, outside the data counters. */
  writeNow(msg: Uint8Array): void {
    if (!this.closed && this.socket.writableLength + msg.length <= this.hub.cfg.sendQueue) this.socket.write(msg);
  }

  /** Ends the session; `last` is written first (a refusal), then the connection closes. */
  end(code: EndCode, detail: string, last?: Uint8Array): void {
    if (this.closed) return;
    this.closed = true;
    const s = this.socket;
    if (last !== undefined && !s.destroyed) {
      s.end(last);
      // A peer that never reads must not hold the socket open.
      setTimeout(() => s.destroy(), 2000).unref();
    } else {
      s.destroy();
    }
    this.hub.ended(this, code, detail);
  }
}

function sessionOf(s: Socket): Session {
  return (s as any)[SESSION];
}

function onData(this: Socket, chunk: Buffer): void {
  const session = sessionOf(this);
  if (!session.closed) session.onData(chunk);
}

function onError(this: Socket, err: NodeJS.ErrnoException): void {
  sessionOf(this).end('socket_error', err.code || err.message);
}

function onEnd(this: Socket): void {
  sessionOf(this).end('client_closed', 'end of stream');
}

function onClose(this: Socket): void {
  sessionOf(this).end('client_closed', 'connection closed');
}
