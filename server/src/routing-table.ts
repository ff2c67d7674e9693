// Which session owns which VPN address, and the batching of writes towards them.
//
// Writes to a client are corked while one incoming chunk (or one batch from the tun) is
// being switched, and uncorked together at its end: every frame of that chunk bound for the
// same client leaves in a single writev, and nothing is held past the chunk.

/** What the table needs of a session. */
export interface Peer {
  /** Writes bytes holding `packets` whole frames; drops and counts them if the queue is full. */
  deliver(data: Uint8Array, packets: number): void;
  /** Ends a cork begun by deliver(). */
  uncork(): void;
}

export class RoutingTable<P extends Peer> {
  private readonly owners = new Map<number, P>();
  private readonly corked: P[] = [];

  get size(): number {
    return this.owners.size;
  }

  lookup(address: number): P | undefined {
    return this.owners.get(address);
  }

  /** Claims an address; false when another peer holds it. */
  bind(address: number, peer: P): boolean {
    const cur = this.owners.get(address);
    if (cur !== undefined && cur !== peer) return false;
    this.owners.set(address, peer);
    return true;
  }

  /** Releases an address, only if `peer` is still its owner. */
  unbind(address: number, peer: P): void {
    if (this.owners.get(address) === peer) this.owners.delete(address);
  }

  /** Called by a peer when it corks; the next flush() uncorks it. */
  corkedBy(peer: P): void {
    this.corked.push(peer);
  }

  /** Sends everything corked during the current chunk or batch. */
  flush(): void {
    const c = this.corked;
    for (let i = 0; i < c.length; i++) c[i].uncork();
    c.length = 0;
  }

  peers(): IterableIterator<P> {
    return this.owners.values();
  }
}
