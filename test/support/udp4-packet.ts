// UDP/IPv4 packets with correct header and UDP checksums, for the tests that write packets
// into a tun device (fixtures/tun-ns.ts, fixtures/splice-ns.ts, fixtures/hub-tun-ns.ts).

// A UDP/IPv4 packet with correct header and UDP checksums.
export function udpPacket(src: string, sport: number, dst: string, dport: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(28 + payload.length);
  const v = new DataView(p.buffer);
  const a = src.split('.').map(Number);
  const b = dst.split('.').map(Number);
  p.set([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, ...a, ...b]);
  v.setUint16(2, p.length);
  v.setUint16(10, checksum(p.subarray(0, 20), 0));
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint16(24, 8 + payload.length);
  p.set(payload, 28);
  const pseudo = a[0]! * 256 + a[1]! + a[2]! * 256 + a[3]! + b[0]! * 256 + b[1]! + b[2]! * 256 + b[3]! + 17 + 8 + payload.length;
  v.setUint16(26, checksum(p.subarray(20), pseudo) || 0xffff);
  return p;
}

export function checksum(bytes: Uint8Array, initial: number): number {
  let sum = initial;
  for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
