// Raw clients on a server whose plain-TCP sessions take the native switching path
// (linux/native/hub.c, server/src/data/native-sessions.ts): granted an address, waited for
// until their session moved to the hub, and JavaScript's reads of a session counted (none
// while C switches its frames).
import { type Tlv, readIpv6Config } from '../../protocol/index.js';
import { v6 } from './ipv6-packets.js';
import { type Harness, type RawClient, extRequest, waitFor } from './server-net.js';

/** A raw client granted an address (extension request, reply read and taken off its frames); the address and the reply. */
export async function granted(
  h: Harness,
  extra?: Uint8Array,
  want = 0,
  tlvs: Tlv[] = [],
): Promise<{ c: RawClient; address: number; address6: Uint8Array | null; reply: Uint8Array }> {
  const c = await h.raw();
  const req = extRequest(want, tlvs);
  c.write(extra ? Buffer.concat([req, extra]) : req);
  await waitFor(() => c.frames.length > 0, 3000, 'the reply');
  const reply = c.frames.shift()!;
  const six = readIpv6Config(reply);
  return { c, address: Buffer.from(reply).readUInt32BE(16), address6: six ? v6(six.address) : null, reply };
}

/** Waits until the session holding `address` is read and written by the hub. */
export async function nativeAt(h: Harness, address: number): Promise<void> {
  await waitFor(() => h.sessionAt(address)?.native === true, 3000, 'the session moved to the hub');
}

/** Counts the calls of the session's onData (JavaScript's reads). */
export function jsReads(h: Harness, address: number): { n: number } {
  const s = h.sessionAt(address)! as unknown as { onData: (c: Uint8Array) => void };
  const count = { n: 0 };
  const orig = s.onData.bind(s);
  s.onData = (c) => {
    count.n++;
    orig(c);
  };
  return count;
}
