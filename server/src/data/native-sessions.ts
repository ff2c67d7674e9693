// The server's native switching path (issue 15): once a plain-TCP session is open (granted
// its address, and its frames may be coalesced), Node stops reading its socket and a hub in C
// (linux/native/hub.c) reads it, switching packets between such sessions without entering
// JavaScript. JavaScript stays the one authority for everything else: the hub hands it, in
// order and whole, every frame it does not switch (control messages, spoofed sources, IPv6
// with extension headers, KIND_SUPER for a session that did not declare them, packets for the server's tun or for TLS and WebSocket sessions, too big for
// their destination), and they go through the session's onData as any chunk. What JavaScript
// sends to a native session (Session.deliver, writeNow) goes through the hub, behind what C
// queued, so frames never interleave. The end of the stream or a failed read or write ends
// the session as Node's events would (client_closed, socket_error); a session JavaScript
// ends is detached first (Session.end), and what C had not sent is handed back.
//
// The hub's counters reach the session's and the server's (Session.countNative) when they are
// looked at: before the idle sweep, /clients, /metrics, and at detach; with them the time the
// frame C holds unfinished began to arrive, so that the frame timeout holds on this path too.
// (The bytes of that frame, at most one frame per session, are not counted in the server's
// reassembly budget, --frame-memory.)
//
// With a tun, the hub reads and writes it too (linux/native/hub_tun.c): packets between native
// sessions and the tun never enter JavaScript; the rest of what the tun reads reaches the
// TunPort as before. The hub is told of every address the switch binds (watch()), so that a
// packet for a session JavaScript serves never goes to Linux; the tun's counters reach the
// TunPort's metrics when looked at, as the sessions' do.
//
// The server never imports linux/: the hub comes through the openHub option, as the tun does.

import net from 'node:net';
import type { NativeLink, Session } from './session.js';
import type { Switch } from './switch.js';
import type { TunPort } from './tun-port.js';

/** The hub of linux/native/hub.c, as linux/server-hub.ts opens it. */
export interface NativeHub {
  /** Reads and writes the socket `fd` (a dup is kept) for `address`; its slot. `superPackets`: it declared T_OFFLOAD (KIND_SUPER frames between two such sessions are switched in C); `address6`, its IPv6 address, if any. */
  attach(fd: number, address: number, mtu: number, sendQueue: number, initial: Uint8Array, superPackets: boolean, address6: Uint8Array | null): number;
  /** Queues `bytes` to the slot's socket: false when over its send-queue cap or going away. */
  send(slot: number, bytes: Uint8Array): boolean;
  /** Counters since the last drain into `out`: rx packets, rx bytes, tx packets, tx bytes, drops, last receive, when the unfinished frame held began (wall ms, 0: none). */
  drain(slot: number, out: Float64Array): void;
  /** Stops and closes the dup; the bytes not sent yet. */
  detach(slot: number): Uint8Array | undefined;
  close(): void;
  /** Reads and writes the server's tun (the device the server's openTun gave), or stops (null). Throws for a device it cannot use. */
  useTun(device: object | null): void;
  /** An address (IPv4 as a number, IPv6 as 16 bytes) a port of the switch now holds, or no longer: never sent to the tun. */
  claim(address: number | Uint8Array, held: boolean): void;
  /** The tun's counters since the last drain into `out`: packets read and sent on, written, dropped full, refused. */
  drainTun(out: Float64Array): void;
}

/** Hub events: frames for JavaScript (an ArrayBuffer), end of stream, a failed read or write. */
export const HUB_FRAMES = 0;
export const HUB_END = 1;
export const HUB_ERROR = 2;

export type HubEvent = (kind: number, slot: number, arg?: ArrayBuffer | (Error & { code?: string })) => void;
export type OpenHub = (maxFrame: number, onEvent: HubEvent) => Promise<NativeHub>;

/** Whether the native path is on: SIMPLEVPN_NATIVE_PATH=0 turns it off (as for the client). */
export function nativePathEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.SIMPLEVPN_NATIVE_PATH !== '0';
}

// While Node still sends bytes written before the session moved, the attachment waits.
const SEND_WAIT_MS = 1;
const SEND_WAIT_TRIES = 2000;

interface NodeHandle {
  fd?: number;
  reading?: boolean;
  readStop(): number;
  readStart(): number;
}

export class NativeSessions implements NativeLink {
  private hub: NativeHub | null = null;
  private readonly bySlot: (Session | undefined)[] = [];
  private readonly slots = new Map<Session, number>();
  private readonly counts = new Float64Array(7);
  /** The server's tun port, when the hub reads and writes its device. */
  private tun: TunPort | null = null;
  private readonly tunCounts = new Float64Array(4);

  constructor(
    /** Bytes queued towards one client before its packets are dropped (--send-queue). */
    private readonly sendQueue: number,
    /** attach() refused: the session stays on the JavaScript path; for the log. */
    private readonly onAttachFailed: (s: Session, err: Error) => void,
  ) {}

  /** Opens the hub; a reason when it cannot be (the sessions stay on the JavaScript path). */
  async open(openHub: OpenHub, maxFrame: number): Promise<string | null> {
    try {
      this.hub = await openHub(maxFrame, (kind, slot, arg) => this.event(kind, slot, arg));
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  get active(): boolean {
    return this.hub !== null;
  }

  /**
   * The hub learns every address `sw` binds from now on (and those bound already), so that it
   * never hands Linux a packet for a session JavaScript serves.
   */
  watch(sw: Switch): void {
    if (this.hub !== null) sw.watch((address, held) => this.hub?.claim(address, held));
  }

  /**
   * The hub reads and writes the tun of `port` (its packets for native sessions, and theirs
   * for it, in C), or stops (null). A reason when it cannot: the port stays on JavaScript.
   */
  useTun(port: TunPort | null): string | null {
    if (this.hub === null) return null;
    if (this.tun !== null) {
      this.hub.useTun(null);
      this.syncTun();
      this.tun = null;
    }
    if (port === null) return null;
    try {
      this.hub.useTun(port.device);
      this.tun = port;
      return null;
    } catch (err) {
      return (err as Error).message;
    }
  }

  /** Whether the hub has the tun. */
  get tunActive(): boolean {
    return this.tun !== null;
  }

  opened(s: Session): void {
    if (this.hub === null || this.slots.has(s)) return;
    const sock = s.socket;
    const h = (sock as unknown as { _handle?: NodeHandle })._handle;
    if (!(sock instanceof net.Socket) || (sock as { encrypted?: boolean }).encrypted || typeof h?.fd !== 'number' || h.fd < 0) return;
    // After the chunk being read (the request's): what it leaves unfinished is known then.
    process.nextTick(() => this.move(s, 0));
  }

  /** Node stops reading `s`; once what Node holds to send has gone, the hub takes the socket. */
  private move(s: Session, tries: number): void {
    const sock = s.socket;
    const h = (sock as unknown as { _handle?: NodeHandle })._handle;
    if (this.hub === null || s.closed || sock.destroyed || !h || typeof h.fd !== 'number' || sock.readableLength > 0) return;
    if (tries === 0) {
      h.reading = false;
      h.readStop();
      // Node's stream would start its handle reading again on its next read(0): it does not now.
      (sock as unknown as { _read: () => void })._read = noRead;
    }
    if (sock.writableLength > 0 && tries < SEND_WAIT_TRIES) return void setTimeout(() => this.move(s, tries + 1), SEND_WAIT_MS);
    const initial = s.takeUnfinished();
    try {
      if (sock.writableLength > 0) throw new Error(`Node still holds ${sock.writableLength} bytes to send after ${SEND_WAIT_TRIES * SEND_WAIT_MS} ms`);
      const slot = this.hub.attach(h.fd, s.address, s.mtu, this.sendQueue, initial, s.superPackets, s.address6);
      this.bySlot[slot] = s;
      this.slots.set(s, slot);
      s.native = true;
    } catch (err) {
      delete (sock as unknown as { _read?: unknown })._read;
      h.reading = true;
      h.readStart();
      if (initial.length > 0) s.onData(initial);
      this.onAttachFailed(s, err as Error);
    }
  }

  send(s: Session, bytes: Uint8Array): boolean {
    const slot = this.slots.get(s);
    return slot !== undefined && this.hub !== null && this.hub.send(slot, bytes);
  }

  detach(s: Session): Uint8Array | undefined {
    const slot = this.slots.get(s);
    if (slot === undefined || this.hub === null) return undefined;
    this.collect(s, slot);
    this.slots.delete(s);
    this.bySlot[slot] = undefined;
    return this.hub.detach(slot);
  }

  /** The hub's counters into the sessions' and the server's. */
  sync(): void {
    for (const [s, slot] of this.slots) this.collect(s, slot);
    this.syncTun();
  }

  private syncTun(): void {
    if (this.tun === null || this.hub === null) return;
    this.hub.drainTun(this.tunCounts);
    this.tun.countNative(this.tunCounts);
  }

  /** Detaches every session (they are ended by then) and closes the hub. */
  close(): void {
    this.useTun(null);
    for (const s of [...this.slots.keys()]) this.detach(s);
    this.hub?.close();
    this.hub = null;
  }

  private collect(s: Session, slot: number): void {
    this.hub!.drain(slot, this.counts);
    s.countNative(this.counts);
  }

  private event(kind: number, slot: number, arg?: ArrayBuffer | (Error & { code?: string })): void {
    const s = this.bySlot[slot];
    if (s === undefined || s.closed) return;
    if (kind === HUB_FRAMES) s.onData(new Uint8Array(arg as ArrayBuffer));
    else if (kind === HUB_END) s.end('client_closed', 'end of stream');
    else {
      const err = arg as Error & { code?: string };
      s.end('socket_error', err.code || err.message);
    }
  }
}

function noRead(): void {}
