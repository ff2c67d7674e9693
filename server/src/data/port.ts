// Where the switch can send packets: a client session, the server's tun, later a peer server
// or another transport. Everything the switch knows of them is here.

/**
 * A frame that came in two parts (it spanned reads of its sender's socket; a session's
 * framer, server/src/data/session-framer.ts): buf[start, start + split), then
 * tail[tailStart, tailStart + length - split). The first part holds its headers whole
 * (HEAD_PART bytes). Both are views that stay valid after the call; joined() copies the frame
 * into a buffer of its own, for whatever reads more than the headers.
 */
export interface FrameParts {
  readonly buf: Uint8Array;
  readonly start: number;
  readonly split: number;
  readonly tail: Uint8Array;
  readonly tailStart: number;
  readonly length: number;
  joined(): Uint8Array;
}

/**
 * The one shape of a packet sink, everywhere: the SDK's Tun, the server's tun device, a Port.
 * Writes one packet, buf[off, off + len); false when it was dropped (the sink counts why).
 */
export interface PacketSink {
  write(buf: Uint8Array, off: number, len: number): boolean;
}

export interface Port extends PacketSink {
  /** The largest packet this port takes; the switch fragments or refuses larger ones. */
  readonly mtu: number;
  /**
   * Frames for this port may be merged into one write: the switch then hands over runs of
   * adjacent frames with deliver(). False for a seed client, which takes each read() as one
   * packet, and for a tun, which takes one packet per write: those only get write().
   */
  readonly coalesce: boolean;
  /**
   * Takes KIND_SUPER frames (a TCP super-packet whole, common/offload/super.ts) through
   * writeSuper(): a client that declared T_OFFLOAD, a tun with offloads. The switch splits
   * them for every other port.
   */
  readonly superPackets?: boolean;
  writeSuper?(buf: Uint8Array, off: number, len: number): boolean;
  /**
   * One frame in two parts (a client's frame that spanned two reads, FrameParts: its header
   * whole in the first part), taken without joining them; `superFrame`: a KIND_SUPER frame
   * (only for a port with superPackets). The switch joins the parts for a port without it,
   * and for anything that reads more than the header (fragments, split super-packets, ICMP).
   */
  writeParts?(p: FrameParts, superFrame: boolean): boolean;
  /** `data` holds `packets` whole frames back to back (only on a coalescing port). */
  deliver(data: Uint8Array, packets: number): boolean;
  /**
   * Sends what the port held back since it told the switch it was corked (Switch.corked):
   * called once at the end of every chunk or tun batch.
   */
  flush(): void;
}
