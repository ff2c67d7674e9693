// Measures what examples/README.md quotes: the QuickJS heap of the device before and after
// it starts and after traffic, and the Node heap per device client. Everything on loopback,
// against the real server (dist/bin/simplevpn-server.js --no-tun).
//
//   node --expose-gc dist/js/examples/measure.js [--clients 200] [--pings 500]

import { spawn } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { Client, parseIPv4 } from '../client-sdk/src/index.js';
import { nodeClock, tcpConnect } from '../client-sdk/node/index.js';
import { startDevice, type Device } from './device/device.js';
import { IpStack, checksum } from './device/ip-stack.js';
import { QuickJSDevice, type Memory } from './quickjs/host.js';

const { values } = parseArgs({ options: { clients: { type: 'string' }, pings: { type: 'string' } } });
const CLIENTS = Number(values.clients ?? 200);
const PINGS = Number(values.pings ?? 500);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc');
  process.exit(2);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

const port = await freePort();
const server = spawn(process.execPath, [new URL('../../bin/simplevpn-server.js', import.meta.url).pathname, '--no-tun', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn'], {
  stdio: ['ignore', 'inherit', 'inherit'],
});
await sleep(500);

/** A second VPN client in this process that pings `dst` and counts the replies. */
async function pinger(): Promise<{ ping(dst: number, seq: number): void; replies: () => number; close(): void; address: number }> {
  let replies = 0;
  const ip = new IpStack((p) => client.send(p));
  const client: Client = new Client({
    connect: tcpConnect({ host: '127.0.0.1', port }),
    clock: nodeClock,
    tun: { write: (b, o, n) => void (b[o + 9] === 1 && b[o + 20] === 0 ? replies++ : ip.input(b.subarray(o, o + n))) },
  });
  client.start();
  while (client.info.state !== 'ready') await sleep(10);
  const me = parseIPv4(client.address!);
  ip.address = me;
  return {
    address: me,
    ping(dst, seq) {
      const p = new Uint8Array(20 + 8 + 56);
      const dv = new DataView(p.buffer);
      p[0] = 0x45;
      dv.setUint16(2, p.length);
      p[8] = 64;
      p[9] = 1;
      dv.setUint32(12, me);
      dv.setUint32(16, dst);
      dv.setUint16(10, checksum(p, 0, 20));
      p[20] = 8;
      dv.setUint16(24, 0x5157);
      dv.setUint16(26, seq);
      dv.setUint16(22, checksum(p, 20, p.length - 20));
      client.send(p);
    },
    replies: () => replies,
    close: () => client.close(),
  };
}

// 1. QuickJS.
const mem: Array<[string, Memory]> = [];
let qAddr = '';
const peer = await pinger();
const q = await QuickJSDevice.start({
  server: '127.0.0.1',
  port,
  config: { id: 'measure', collector: '10.0.0.1:5005', interval: 0.05 },
  log: (event, f) => {
    if (event === 'memory') mem.push([String(f.phase), f as unknown as Memory]);
    if (event === 'ready') qAddr = String(f.address);
  },
});
while (!qAddr) await sleep(10);
await sleep(50);
mem.push(['ready', q.memory()]);
const dst = qAddr.split('.').reduce((n, o) => n * 256 + +o, 0);
for (let i = 0; i < PINGS; i++) {
  peer.ping(dst, i);
  if (i % 50 === 49) await sleep(20);
}
await sleep(1000);
const readings = q.eval('dev.seq') as number;
mem.push([`after ${peer.replies()} pings and ${readings} readings`, q.memory()]);
const dump = q.dumpMemory();
q.stop();
peer.close();

console.log('QuickJS (quickjs-emscripten RELEASE_SYNC), JS_ComputeMemoryUsage:');
console.log('| phase | memory_used_size | objects | atoms (B) | shapes (B) | functions (B) | bytecode (B) | strings (B) | array buffers (B) |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [phase, m] of mem)
  console.log(`| ${phase} | ${m.memory_used_size} | ${m.obj_count} | ${m.atom_size} | ${m.shape_size} | ${m.js_func_size} | ${m.js_func_code_size} | ${m.str_size} | ${m.binary_object_size} |`);
console.log('\n' + dump.split('\n').slice(0, 40).join('\n'));

// 2. Node: heap per device client (SDK Client + IP stack + device, connected and ready).
gc();
await sleep(100);
gc();
const before = process.memoryUsage();
const devices: Device[] = [];
const quiet = { log() {} };
for (let i = 0; i < CLIENTS; i++) {
  devices.push(startDevice({ connect: tcpConnect({ host: '127.0.0.1', port }), clock: nodeClock, ...quiet }, { id: 'd' + i, collector: '10.0.0.1:5005', interval: 10 }));
}
const t0 = Date.now();
while (devices.some((d) => d.client.info.state !== 'ready') && Date.now() - t0 < 30_000) await sleep(20);
const ready = devices.filter((d) => d.client.info.state === 'ready').length;
gc();
await sleep(100);
gc();
const after = process.memoryUsage();
console.log(`\nNode ${process.version}: ${ready} of ${CLIENTS} device clients ready`);
console.log(`heapUsed +${after.heapUsed - before.heapUsed} B (${Math.round((after.heapUsed - before.heapUsed) / ready)} B per client, including its node:net socket)`);
console.log(`external +${after.external - before.external} B, rss +${after.rss - before.rss} B`);
for (const d of devices) d.stop();
server.kill('SIGTERM');
