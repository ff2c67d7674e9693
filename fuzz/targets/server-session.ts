// The server's handling of what clients send: a real VpnServer (no listener, no tun) whose
// connections are in-memory sockets, fed a script of operations drawn from the input: bytes
// on one of three connections, a clean end, a reset, a client that stops reading, a new
// connection in a slot, and time passing (the server's sweep of silent, slow and unanswered
// connections, with Date.now moved on). With WebSocket on or off (the opening's first bytes
// decide what a connection is).
//
// Invariants, after every operation: nothing thrown out of the server (synchronously or
// later, from an event handler); what each client receives is a valid stream whose packets
// come from addresses connections hold (anti-spoofing; for a client that stopped reading,
// held at some point while it did not read: its queue may outlive the sender) and go to its own; no address held twice: every address the switch binds
// belongs to one open connection holding that address, and the lease store counts exactly
// those; the unfinished-frame budget counts no more holders than connections. At the end, every
// connection closed: none left in the server's lists, no address bound or leased, no
// unfinished-frame bytes counted, every socket destroyed.
//
// Input: [config: bit 0 WebSocket] then operations [op] [operand...]:
//   op & 7: 0-1 bytes (a length byte, then that many bytes), 2 an IPv4 packet (a byte choosing
//   its source and destination among the connections' addresses and others, and Don't
//   Fragment; a byte for its length; one longer than HEAD_PART arrives in two chunks, cut
//   where those two bytes say), 3 end, 4 reset, 5 stop/start reading, 6 time passes (a
//   byte: seconds), 7 a new connection in the slot;
//   (op >> 3) % 3 the connection (slot)
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { ALL, ANY, Framer, KEEPALIVE, KIND_REQUEST, T_CLIENT, T_LEASE, T_MTU, ascii, extMessage, formatIPv4, readU32, seedRequest, u16 } from '../../protocol/index.js';
import { type VpnServer, createServer } from '../../server/src/server.js';
import { internals } from '../../server/src/internals.js';
import { HEAD_PART } from '../../server/src/data/session-framer.js';
import { protocolExamples } from '../engine/seeds.js';
import { type FuzzTarget, InputReader, check } from '../engine/target.js';

const SLOTS = 3;
const GATEWAY = 0x0a4d0001; // 10.77.0.1 in 10.77.0.0/29

/** A WebSocket upgrade as a browser sends it, to the server's default path. */
const UPGRADE = new TextEncoder().encode(
  'GET / HTTP/1.1\r\nHost: vpn\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
);

/** A socket with nothing under it: what the client sends is pushed in, what the server writes is kept (or held, for a client that stopped reading). */
class MemorySocket extends Duplex {
  readonly remoteAddress: string;
  readonly remotePort = 40000;
  readonly remoteFamily = 'IPv4';
  /** Writes waiting for the client to read again. */
  private held: Array<() => void> = [];
  stalled = false;
  /**
   * Addresses held by some connection at any operation since this client stopped reading:
   * a packet the server queued for it then may arrive after its sender has gone, which is
   * no spoofing (the sender held its address when it sent).
   */
  readonly heldWhileWaiting = new Set<number>();
  get waiting(): boolean {
    return this.stalled || this.held.length > 0;
  }
  /** What the server wrote, read back as frames as the client would. */
  readonly received = new Framer(65535);
  readonly frames: Uint8Array[] = [];

  constructor(n: number) {
    super({ allowHalfOpen: false });
    this.remoteAddress = `192.0.2.${n}`;
  }
  override _read(): void {}
  /**
   * The server answered in HTTP (a WebSocket upgrade, or its refusal) or with a TLS alert (a
   * TLS client on the plain port): not read as frames.
   */
  foreign = false;
  override _write(chunk: Buffer, _enc: string, done: (e?: Error | null) => void): void {
    if (this.frames.length === 0 && this.received.pending === 0 && (chunk[0] === 0x15 || chunk.subarray(0, 5).toString('latin1') === 'HTTP/')) this.foreign = true;
    if (!this.foreign) {
      this.received.push(Uint8Array.from(chunk));
      for (let f; (f = this.received.next()) !== null; ) this.frames.push(Uint8Array.from(f));
    }
    if (this.stalled) this.held.push(() => done());
    else done();
  }
  override _final(done: (e?: Error | null) => void): void {
    done();
  }
  resume_(): void {
    this.stalled = false;
    const h = this.held;
    this.held = [];
    for (const f of h) f();
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
}

/** Lets the stream and server events queued by an operation run (nextTick and immediates). */
const settle = () => new Promise<void>((r) => setImmediate(() => setImmediate(r)));

/**
 * What the server wrote to `s` since the last look: a valid stream, each packet from an
 * address a connection held during the operation (anti-spoofing: a client cannot send from
 * another's address), the gateway, or 0.0.0.0 / 255.255.255.255 (replies, keepalives), and
 * to this connection's own address or one of those two (a refusal: to 0.0.0.0 from any).
 */
function delivered(s: MemorySocket, held: Set<number>, own: Set<number>, when: string): void {
  if (s.foreign) return;
  check(s.received.error === null, `${when}: the server wrote a malformed stream: ${s.received.error}`);
  for (const f of s.frames.splice(0)) {
    if (f[0] >> 4 !== 4) continue;
    const src = readU32(f, 12);
    const dst = readU32(f, 16);
    // A refusal goes to 0.0.0.0 from the address that was asked for (PROTOCOL.md).
    check(dst === ANY || src === ANY || src === ALL || src === GATEWAY || held.has(src), `${when}: a client received a packet from ${formatIPv4(src)}, which no connection held`);
    check(dst === ANY || dst === ALL || own.has(dst), `${when}: a client received a packet for ${formatIPv4(dst)}, not its address`);
  }
}

function invariants(server: VpnServer, when: string): void {
  const i = internals(server);
  const owners = (i.switch as unknown as { owners: Map<number, unknown> }).owners;
  const holders = new Map<number, number>();
  for (const c of i.clients) {
    const a = c.session.address;
    if (c.closed || a === 0) continue;
    holders.set(a, (holders.get(a) ?? 0) + 1);
    check(holders.get(a) === 1, `${when}: address ${a >>> 0} held by two open connections`);
  }
  for (const [a, port] of owners) {
    const c = [...i.clients].find((x) => x.session === port);
    check(c !== undefined && !c.closed && c.session.address === a, `${when}: the switch binds ${a >>> 0} to a connection that is gone or holds another address`);
  }
  check(i.leases.inUse === owners.size, `${when}: ${i.leases.inUse} leases for ${owners.size} bound addresses`);
  const r = (i.admission as unknown as { env: { reassembly: { held: number; holders: number } } }).env.reassembly;
  check(r.held >= 0 && r.holders >= 0 && r.holders <= i.clients.size, `${when}: unfinished frames counted ${r.held} bytes on ${r.holders} holders for ${i.clients.size} connections`);
}

export const serverSessionTarget: FuzzTarget = {
  name: 'server-session',
  about: "the server's connections: bytes, packets, ends, resets, stalls and time on three in-memory connections; no throw, no spoofed packet, no address held twice, all released",
  covers: ['server/src/control/admission.js', 'server/src/data/session.js', 'server/src/server.js', 'server/src/transport/websocket.js', 'server/src/data/switch.js'],
  ciRuns: 300,
  maxLength: 4096,
  dictionary: [
    seedRequest(0), seedRequest(GATEWAY + 2), KEEPALIVE,
    extMessage(0, 0, KIND_REQUEST, [[T_MTU, u16(1500)], [T_CLIENT, ascii('fuzz')]]),
    extMessage(GATEWAY + 3, 0, KIND_REQUEST, [[T_LEASE, new Uint8Array(16)]]),
    Uint8Array.from([0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 3]),
    Uint8Array.from([0x45, 0, 0, 28, 0, 0, 0x20, 0, 64, 17, 0, 0, 10, 77, 0, 3, 10, 77, 0, 2]),
    UPGRADE,
    Uint8Array.of(0x82, 0x94, 0, 0, 0, 0),
    Uint8Array.from([0x16, 3, 1]),
    Uint8Array.from([0x00]), Uint8Array.from([0x08]), Uint8Array.from([0x10]), Uint8Array.from([0x06]), Uint8Array.from([0x3f]),
  ],
  seeds() {
    const bytesOp = (slot: number, b: Uint8Array) => [slot << 3, b.length, ...b];
    const req = extMessage(0, 0, KIND_REQUEST, [[T_MTU, u16(1500)]]);
    const data = [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8];
    return [
      [0, ...bytesOp(0, seedRequest(0)), ...bytesOp(1, req), ...bytesOp(0, Uint8Array.from(data)), 3, (1 << 3) | 4],
      // Two clients with addresses; packets from the first to the second, to itself, to the gateway, one too big with DF.
      [0, ...bytesOp(0, seedRequest(0)), ...bytesOp(1, req), 2, 0, 1, 2, 4, 1, 2, 8, 2, 2, 0x10, 200],
      [0, ...bytesOp(0, seedRequest(GATEWAY + 2)), ...bytesOp(1, seedRequest(GATEWAY + 2)), 6, 20, 7, ...bytesOp(0, KEEPALIVE)],
      [1, ...bytesOp(2, new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n')), ...bytesOp(0, req), 5, ...bytesOp(0, KEEPALIVE), 6, 70],
      [1, ...bytesOp(1, UPGRADE), ...bytesOp(1, Uint8Array.of(0x82, 0x94, 0, 0, 0, 0, ...seedRequest(0))), ...bytesOp(0, req)],
      ...protocolExamples().map((f) => [0, ...bytesOp(0, f), ...bytesOp(1, f), ...bytesOp(1, seedRequest(0))]),
    ].map((a) => Uint8Array.from(a));
  },
  async run(input) {
    const r = new InputReader(input);
    const ws = (r.u8() & 1) === 1;
    const realNow = Date.now;
    let skew = 0;
    Date.now = () => realNow() + skew;
    const server = createServer({
      subnet: '10.77.0.0/29',
      tun: false,
      ws,
      status: false,
      maxClients: 4,
      sendQueue: 131072,
      frameMemory: 65535,
      maxPerSource: 1000,
      connRate: 100000,
    });
    const sockets: MemorySocket[] = [];
    const slots: MemorySocket[] = [];
    let made = 0;
    // Every session the server makes, by its socket (it keeps its address once closed), to
    // know what a connection held during an operation that also closed it.
    const sessions = new Map<object, { address: number; closed: boolean }>();
    const admission = internals(server).admission;
    const connect = admission.connect.bind(admission);
    admission.connect = (sock, ...rest) => {
      const c = connect(sock, ...rest);
      sessions.set(sock, c.session);
      return c;
    };
    /** The address the connection over `x` holds or held last (0: none). */
    const ownAddress = (x: MemorySocket): number => sessions.get(x)?.address ?? 0;
    const open = (slot: number) => {
      const s = new MemorySocket(++made);
      sockets.push(s);
      slots[slot] = s;
      (server as unknown as { accept(s: Socket, kind: string, remote: string): void }).accept(s as unknown as Socket, 'tcp', `${s.remoteAddress}:${s.remotePort}`);
    };
    try {
      for (let k = 0; k < SLOTS; k++) open(k);
      for (let step = 0; r.left > 0 && step < 64; step++) {
        const op = r.u8();
        const slot = (op >> 3) % SLOTS;
        const s = slots[slot];
        // Before the operation: bytes pushed are read at once, and may close the connection.
        const knownBefore = new Set(sessions.values());
        const openBefore = new Set([...knownBefore].filter((x) => !x.closed));
        const ownBefore = new Map(sockets.map((x) => [x, ownAddress(x)]));
        switch (op & 7) {
          case 3:
            if (!s.destroyed) s.push(null);
            break;
          case 4:
            if (!s.destroyed) s.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
            break;
          case 5:
            if (s.stalled) s.resume_();
            else s.stalled = true;
            break;
          case 6:
            skew += r.u8() * 1000;
            (server as unknown as { sweep(): void }).sweep();
            break;
          case 7:
            if (!s.destroyed) s.destroy();
            open(slot);
            break;
          case 2: {
            // A packet built from the addresses in play, so that sending from another's
            // address, or to one, is one mutation away.
            const sel = r.u8();
            const size = r.u8();
            const other = ownAddress(slots[(slot + 1) % SLOTS]);
            const own = ownAddress(s);
            const src = [own, other, GATEWAY + 8 + (sel >> 5), 0][sel & 3];
            const dst = [other, own, GATEWAY, 0x08080808][(sel >> 2) & 3];
            const p = Buffer.alloc(20 + size * 8);
            p[0] = 0x45;
            p.writeUInt16BE(p.length, 2);
            p[6] = sel & 0x10 ? 0x40 : 0;
            p[8] = 64;
            p[9] = 17;
            p.writeUInt32BE(src >>> 0, 12);
            p.writeUInt32BE(dst >>> 0, 16);
            if (s.destroyed || s.readableEnded) break;
            // Longer than the headers the server reads in place: in two chunks, cut where the
            // selector and the size say, so that the server forwards it in two parts.
            if (p.length <= HEAD_PART) s.push(p);
            else {
              const cut = 1 + ((sel * 131 + size * 7) % (p.length - 1));
              s.push(p.subarray(0, cut));
              s.push(Buffer.from(p.subarray(cut)));
            }
            break;
          }
          default: {
            // A buffer of its own, as a net.Socket reads into (the server may keep views of it,
            // queued on other sockets: Node never reuses a chunk it emitted).
            const b = r.bytes(r.u8());
            if (!s.destroyed && !s.readableEnded) s.push(Buffer.from(b));
          }
        }
        await settle();
        const when = `after operation ${step} (${op & 7} on ${slot})`;
        invariants(server, when);
        // Held during the operation: by a session open before it, or made in it.
        const held = new Set([...sessions.values()].filter((x) => openBefore.has(x) || !knownBefore.has(x) || !x.closed).map((x) => x.address));
        for (const x of sockets) {
          const w = x.heldWhileWaiting;
          delivered(x, w.size > 0 ? new Set([...held, ...w]) : held, new Set([ownBefore.get(x) ?? 0, ownAddress(x)]), when);
          if (x.waiting) for (const a of held) w.add(a);
          else w.clear();
        }
      }
      // Every connection goes: by the client, then the server.
      for (const s of sockets) if (!s.destroyed) s.destroy();
      await settle();
      const i = internals(server);
      check(i.clients.size === 0, `${i.clients.size} connections left after every socket closed`);
      check(i.switch.size === 0 && i.leases.inUse === 0, `addresses left bound (${i.switch.size}) or leased (${i.leases.inUse}) after every socket closed`);
      const re = (i.admission as unknown as { env: { reassembly: { held: number; holders: number } } }).env.reassembly;
      check(re.held === 0 && re.holders === 0, `unfinished frames still counted: ${re.held} bytes on ${re.holders} holders`);
    } finally {
      Date.now = realNow;
      await server.close();
      for (const s of sockets) s.destroy();
    }
    for (const s of sockets) check(s.destroyed, 'a socket not destroyed after the server closed');
  },
};
