// The browser on the VPN: the page's script. The SDK core (the global `simplevpn`, from
// dist/sdk/simplevpn-sdk.iife.js) and its WebSocket transport (`simplevpnWebSocket`, from
// dist/sdk/simplevpn-websocket.iife.js) are loaded by index.html before this; the device
// example's IP stack (examples/device/ip-stack.ts) is bundled in. The page joins the VPN
// over the browser's own WebSocket, answers ping on its address, sends a telemetry datagram
// every second to the collector (UDP; a collector that echoes it back gives the round trip),
// and shows its state. Settings come from the page's query string:
//   ?server=ws://HOST:2002/&collector=10.0.0.2:5005
// (server: the VPN server's WebSocket URL, by default ws://<this page's host name>:2002/;
// collector: ADDRESS:PORT on the VPN, none by default).
// Bundled by build.mjs into dist/examples/browser-page.iife.js.

import type * as Sdk from '../../client-sdk/src/index.js';
import type * as Ws from '../../client-sdk/src/websocket.js';
import { IpStack } from '../device/ip-stack.js';

declare const simplevpn: typeof Sdk;
declare const simplevpnWebSocket: typeof Ws;
// The DOM, as little of it as is used: the tree type-checks without the DOM's types.
declare const document: { getElementById(id: string): { textContent: string | null; className: string } | null };
declare const location: { search: string; hostname: string };

const query = new URLSearchParams(location.search);
const server = query.get('server') || `ws://${location.hostname || '127.0.0.1'}:2002/`;
const collectorText = query.get('collector') || '';
const [collectorHost, collectorPort] = collectorText.split(':');
const ipv4 = (s: string): number => s.split('.').reduce((a, x) => a * 256 + Number(x), 0);
const collector = collectorText ? ipv4(collectorHost) : 0;
const PORT = 5006;

const show = (id: string, text: string, cls?: string) => {
  const e = document.getElementById(id);
  if (!e) return;
  e.textContent = text;
  if (cls !== undefined) e.className = cls;
};

const sent = new Map<number, number>(); // telemetry seq -> when sent
let seq = 0;
let rtt = -1;
const ip = new IpStack(
  (pkt) => client.send(pkt),
  (_src, _srcPort, dstPort, payload) => {
    if (dstPort !== PORT) return;
    try {
      const m = JSON.parse(new TextDecoder().decode(payload)) as { seq?: number };
      const t = sent.get(Number(m.seq));
      if (t !== undefined) {
        rtt = performance.now() - t;
        sent.delete(Number(m.seq));
      }
    } catch {}
  },
);

const client = new simplevpn.Client({
  connect: simplevpnWebSocket.webSocketConnect(server),
  tun: { write: (buf, off, len) => ip.input(buf.subarray(off, off + len)) },
  onState: (s) => {
    show('state', s.state, s.state);
    if (s.state === 'ready') {
      ip.address = ipv4(s.address);
      show('address', `${s.address}/${s.prefix}`);
      show('gateway', s.gateway ?? '–');
    } else {
      ip.address = 0;
      if (s.state === 'down') show('detail', `${s.reason}${s.detail ? ': ' + s.detail : ''}`);
    }
  },
});

function tick(): void {
  const st = client.stats;
  show('bytes', `${st.txBytes} sent, ${st.rxBytes} received (${st.txPackets} / ${st.rxPackets} packets)`);
  show('pings', String(ip.stats.echoReplies));
  show('telemetry', `${ip.stats.udpOut} sent, ${ip.stats.udpIn} echoed`);
  show('rtt', rtt < 0 ? '–' : `${rtt.toFixed(1)} ms`);
  if (collector && ip.address) {
    const n = ++seq;
    sent.set(n, performance.now());
    if (sent.size > 30) sent.delete(sent.keys().next().value!);
    ip.udp(collector, PORT, Number(collectorPort), new TextEncoder().encode(JSON.stringify({ id: 'browser', seq: n, agent: navigator.userAgent.slice(0, 60) })));
  }
}
declare const navigator: { userAgent: string };

show('server', server);
show('collector', collectorText || 'none (?collector=ADDRESS:PORT)');
client.start();
setInterval(tick, 1000);
(globalThis as { svpnPage?: unknown }).svpnPage = { client, ip };
