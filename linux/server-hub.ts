// The server's native switching hub (linux/native/hub.c, hub_tun.c) on the binding: what
// simplevpn-server passes to createServer as `openHub`. It matches the server's OpenHub seam
// (server/src/data/native-sessions.ts) by shape, so linux/ never imports the server.

import { load, nativeHandleOf, type TunDevice, TunError } from './tun.js';

type HubHandle = object;
interface HubNative {
  hubOpen(maxFrame: number, onEvent: (kind: number, slot: number, arg?: ArrayBuffer | Error) => void): HubHandle;
  hubAttach(h: HubHandle, fd: number, address: number, mtu: number, sendQueue: number, initial: Uint8Array, superPackets: boolean, address6: Uint8Array): number;
  hubSend(h: HubHandle, slot: number, bytes: Uint8Array): boolean;
  hubDrain(h: HubHandle, slot: number, out: Float64Array): void;
  hubDetach(h: HubHandle, slot: number): Uint8Array | undefined;
  hubClose(h: HubHandle): void;
  hubTun(h: HubHandle, device: object | null): void;
  hubClaim(h: HubHandle, address: number | Uint8Array, held: boolean): void;
  hubTunDrain(h: HubHandle, out: Float64Array): void;
}

export async function openServerHub(maxFrame: number, onEvent: (kind: number, slot: number, arg?: ArrayBuffer | Error) => void) {
  const n = load() as unknown as HubNative | TunError;
  if (n instanceof TunError) throw n;
  if (typeof n.hubOpen !== 'function') throw new TunError('ADDON_MISSING', 'The native binding has no switching hub (built before hub.c): rebuild it (`node linux/native/install.mjs` in a checkout).');
  const h = n.hubOpen(maxFrame, onEvent);
  return {
    attach: (fd: number, address: number, mtu: number, sendQueue: number, initial: Uint8Array, superPackets: boolean, address6: Uint8Array | null) =>
      n.hubAttach(h, fd, address, mtu, sendQueue, initial, superPackets, address6 ?? new Uint8Array(0)),
    send: (slot: number, bytes: Uint8Array) => n.hubSend(h, slot, bytes),
    drain: (slot: number, out: Float64Array) => n.hubDrain(h, slot, out),
    detach: (slot: number) => n.hubDetach(h, slot),
    close: () => n.hubClose(h),
    useTun: (device: object | null) => {
      const handle = device === null ? null : nativeHandleOf(device as TunDevice);
      if (handle === undefined) throw new Error("the server's tun was not opened by the native binding (linux/tun.ts)");
      n.hubTun(h, handle);
    },
    claim: (address: number | Uint8Array, held: boolean) => n.hubClaim(h, address, held),
    drainTun: (out: Float64Array) => n.hubTunDrain(h, out),
  };
}
