// The server's own tun on the native binding: what simplevpn-server passes to createServer
// as `openTun`. It matches the server's OpenTun seam by shape, so linux/ never imports the
// server.

import { disableIpv6, openTun, type TunDevice } from './tun.js';

export async function openServerTun(
  name: string,
  config: { address: string; prefix: number; mtu: number },
  onPackets: (packets: Uint8Array[], count: number) => void,
  onError?: (err: Error) => void,
): Promise<TunDevice> {
  const dev = openTun({ name, onPackets, onError });
  disableIpv6(dev.name);
  try {
    dev.configure(config);
  } catch (err) {
    dev.close();
    throw err;
  }
  return dev;
}
