// The server's own tun on the native binding (linux/tun.ts). Loaded only when a tun is
// wanted, so the server runs (client-to-client only) where the binding is not built.

import { disableIpv6, openTun } from '../../linux/tun.js';
import type { OpenTun } from './server.js';

export const openServerTun: OpenTun = async (name, config, onPackets) => {
  const dev = openTun({ name, onPackets });
  disableIpv6(dev.name);
  try {
    dev.configure(config);
  } catch (err) {
    dev.close();
    throw err;
  }
  return dev;
};
