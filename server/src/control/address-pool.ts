// The subnet's host addresses: hand out, take on request, give back. Every operation is
// O(1) amortised whatever the prefix: nothing is scanned and nothing sized by the subnet is
// built up front except three bitsets (2 MiB each for a /8, 8 KiB for a /16).
//
// Fixed addresses belong to one client (the auth file says which): allocate() never hands
// them out and take() grants them only to a caller that says it is their owner.
//
// Order: first the never-used addresses from the bottom up (or from `start` on, wrapping
// round: servers of a cluster start apart, so that they seldom reach for the same address at
// once), then released ones oldest first, so an address a client just lost stays free as
// long as possible for that client to ask for it back.

export class AddressPool {
  readonly network: number;
  readonly prefix: number;
  /** Addresses in the subnet, network and broadcast included. */
  readonly span: number;
  /** Addresses that can ever be handed out. */
  readonly capacity: number;
  private readonly reserved: number[];
  private readonly inUse: Uint32Array;
  private readonly queued: Uint32Array;
  private readonly fixed: Uint32Array;
  private fixedCount = 0;
  private fixedHeld = 0;
  private queue = new Uint32Array(64);
  private qHead = 0;
  private qLen = 0;
  private cursor = 0; // offsets start .. start + cursor (mod span) have been handed out at least once
  private readonly start: number;
  private used = 0;

  /** `reserved` addresses (the server's own, say) are never handed out; `start`: the offset in the subnet allocate() begins at. */
  constructor(network: number, prefix: number, reserved: number[] = [], start = 0) {
    if (!(prefix >= 8 && prefix <= 30)) throw new RangeError('prefix must be between 8 and 30');
    this.prefix = prefix;
    this.span = 2 ** (32 - prefix);
    this.network = (network - (network % this.span)) >>> 0;
    this.inUse = new Uint32Array(Math.ceil(this.span / 32));
    this.queued = new Uint32Array(this.inUse.length);
    this.fixed = new Uint32Array(this.inUse.length);
    const res = new Set([0, this.span - 1]);
    for (const a of reserved) if (this.inside(a)) res.add(a - this.network);
    this.reserved = [...res];
    for (const off of this.reserved) this.set(this.inUse, off);
    this.capacity = this.span - this.reserved.length;
    this.start = Math.abs(Math.floor(start)) % this.span;
  }

  /** Addresses handed out now. */
  get size(): number {
    return this.used;
  }

  /** Addresses allocate() could still hand out. */
  get free(): number {
    return this.capacity - this.used - (this.fixedCount - this.fixedHeld);
  }

  /** True when `addr` is in the subnet (reserved addresses included). */
  inside(addr: number): boolean {
    return addr - this.network >= 0 && addr - this.network < this.span;
  }

  /** True when `addr` could be handed out: inside the subnet and not reserved. */
  assignable(addr: number): boolean {
    return this.inside(addr) && !this.reserved.includes(addr - this.network);
  }

  has(addr: number): boolean {
    return this.assignable(addr) && this.get(this.inUse, addr - this.network);
  }

  /** Any free address, or 0 when none is left. */
  allocate(): number {
    while (this.cursor < this.span) {
      const off = (this.cursor++ + this.start) % this.span;
      // A queued offset was used and released: it waits its turn in the queue.
      if (!this.get(this.inUse, off) && !this.get(this.queued, off) && !this.get(this.fixed, off)) return this.mark(off);
    }
    while (this.qLen > 0) {
      const off = this.queue[this.qHead];
      this.qHead = (this.qHead + 1) % this.queue.length;
      this.qLen--;
      this.clear(this.queued, off);
      // A fixed address leaves the queue here; unfix() puts it back.
      if (!this.get(this.inUse, off) && !this.get(this.fixed, off)) return this.mark(off);
    }
    return 0;
  }

  /**
   * Takes a specific address; false when it is in use or cannot be handed out. A fixed
   * address is granted only with `owner` set: the caller vouches it is the owner's.
   */
  take(addr: number, owner = false): boolean {
    if (!this.assignable(addr)) return false;
    const off = addr - this.network;
    if (this.get(this.inUse, off)) return false;
    if (this.get(this.fixed, off)) {
      if (!owner) return false;
      this.fixedHeld++;
    }
    this.mark(off);
    return true;
  }

  isFixed(addr: number): boolean {
    return this.assignable(addr) && this.get(this.fixed, addr - this.network);
  }

  /** Keeps `addr` for one client. A current holder keeps it until released. */
  fix(addr: number): void {
    if (!this.assignable(addr) || this.isFixed(addr)) return;
    const off = addr - this.network;
    this.set(this.fixed, off);
    this.fixedCount++;
    if (this.get(this.inUse, off)) this.fixedHeld++;
  }

  /** Returns a fixed address to general use. */
  unfix(addr: number): void {
    if (!this.isFixed(addr)) return;
    const off = addr - this.network;
    this.clear(this.fixed, off);
    this.fixedCount--;
    if (this.get(this.inUse, off)) this.fixedHeld--;
    else this.enqueueOnce(off);
  }

  /** Gives an address back. Releasing a free or reserved address does nothing. */
  release(addr: number): void {
    if (!this.has(addr)) return;
    const off = addr - this.network;
    this.clear(this.inUse, off);
    this.used--;
    if (this.get(this.fixed, off)) this.fixedHeld--;
    else this.enqueueOnce(off);
  }

  // Each offset sits in the queue at most once, so the queue never outgrows the subnet.
  private enqueueOnce(off: number): void {
    if (this.get(this.queued, off)) return;
    this.set(this.queued, off);
    this.enqueue(off);
  }

  private mark(off: number): number {
    this.set(this.inUse, off);
    this.used++;
    return (this.network + off) >>> 0;
  }

  private enqueue(off: number): void {
    if (this.qLen === this.queue.length) {
      // Grow, unrolling the ring. Each offset is queued at most once, so this stops at span.
      const bigger = new Uint32Array(Math.min(this.queue.length * 2, this.span));
      for (let i = 0; i < this.qLen; i++) bigger[i] = this.queue[(this.qHead + i) % this.queue.length];
      this.queue = bigger;
      this.qHead = 0;
    }
    this.queue[(this.qHead + this.qLen) % this.queue.length] = off;
    this.qLen++;
  }

  private get(bits: Uint32Array, off: number): boolean {
    return (bits[off >>> 5] & (1 << (off & 31))) !== 0;
  }

  private set(bits: Uint32Array, off: number): void {
    bits[off >>> 5] |= 1 << (off & 31);
  }

  private clear(bits: Uint32Array, off: number): void {
    bits[off >>> 5] &= ~(1 << (off & 31));
  }
}
