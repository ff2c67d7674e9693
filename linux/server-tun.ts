// The server's own tun on the native binding: what simplevpn-server passes to createServer
// as `openTun`. It matches the server's OpenTun seam by shape, so linux/ never imports the
// server. It is opened with TUN offloads (TSO, checksum offload) where the kernel allows:
// the server's TunPort then coalesces what it writes, and reads come split into packets;
// where the kernel refuses, the device is plain and `offloadError` says why.

import { disableIpv6, openTun, type TunDevice } from './tun.js';
import { enableIpv6 } from './ipv6.js';

export async function openServerTun(
  name: string,
  config: { address: string; prefix: number; mtu: number; ipv6?: { address: string; prefix: number } },
  onPackets: (packets: Uint8Array[], count: number) => void,
  onError?: (err: Error) => void,
): Promise<TunDevice> {
  const dev = openTun({ name, onPackets, onError, offload: process.env.SIMPLEVPN_TUN_OFFLOAD !== '0' });
  // IPv6 stays off unless the server has an IPv6 subnet (--subnet6): then the device gets
  // the server's IPv6 address, and Linux routes the subnet to it.
  // (Off first even then, so that the kernel makes no link-local address when it comes up.)
  disableIpv6(dev.name);
  // The server's TunPort routes KIND_SUPER frames (whole to clients that take them, split
  // for the rest), so super-packets need not be split on reading.
  dev.superFrames = dev.offload;
  try {
    dev.configure(config);
    if (config.ipv6) enableIpv6(dev.name, config.ipv6.address, config.ipv6.prefix);
  } catch (err) {
    dev.close();
    throw err;
  }
  return dev;
}
