// The example device bundle inside QuickJS (examples/quickjs/host.ts), against a scripted
// server on loopback TCP: it gets an address, sends telemetry, answers ping, reconnects
// asking for its old address, and stops with nothing left: no socket, no timer, no
// QuickJS handle (TestQuickJSWASMModule checks every context and allocation).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { DEBUG_SYNC, TestQuickJSWASMModule, newQuickJSWASMModule } from 'quickjs-emscripten';
import { KEEPALIVE, isKeepalive, isRequest, Framer, SRC, readU32 } from '../../../protocol/index.js';
import { QuickJSDevice } from '../../../examples/quickjs/host.js';
import { checksum } from '../../../examples/device/ip-stack.js';
import { ip } from '../../support/sdk-fakes.js';
import { KIND_REPLY, T_IPV6, configTlvs, eachTlv, extMessage, ipv6Tlvs } from '../../../protocol/index.js';
import { icmp6Verify, packet6, v6 } from '../../support/ipv6-packets.js';

const ADDR = '10.1.2.7';
const PEER = '10.1.2.1';
const ADDR6 = v6('fd00:1::a01:207');
const PEER6 = v6('fd00:1::a01:201');

interface Ev {
  event: string;
  [k: string]: unknown;
}

/** A server that assigns ADDR, echoes keepalives, and records every data packet. */
class Scripted {
  readonly server = net.createServer((s) => this.accept(s));
  readonly socks: net.Socket[] = [];
  readonly requests: Uint8Array[] = [];
  readonly packets: Uint8Array[] = [];
  port = 0;

  async listen() {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  private accept(s: net.Socket) {
    this.socks.push(s);
    const f = new Framer();
    s.on('error', () => {});
    s.on('data', (d) => {
      f.push(d);
      for (let p; (p = f.next()) !== null; ) {
        if (isRequest(p)) {
          this.requests.push(p.slice());
          // A device that asks for IPv6 (TLV 24) gets ADDR6 too.
          let asks6 = false;
          eachTlv(p, (t) => (asks6 ||= t === T_IPV6));
          const tlvs = configTlvs({ prefix: 24, gateway: ip(PEER), keepalive: 30, routes: [] });
          if (asks6) tlvs.push(...ipv6Tlvs({ address: ADDR6, prefix: 64, routes: [] }));
          s.write(extMessage(0, ip(ADDR), KIND_REPLY, tlvs));
        } else if (isKeepalive(p)) s.write(KEEPALIVE);
        else this.packets.push(p.slice());
      }
    });
  }

  get last() {
    return this.socks[this.socks.length - 1];
  }

  close() {
    for (const s of this.socks) s.destroy();
    return new Promise((r) => this.server.close(r));
  }
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function echoRequest(id: number, seq: number): Uint8Array {
  const p = new Uint8Array(20 + 8 + 4);
  p[0] = 0x45;
  p[3] = p.length;
  p[8] = 64;
  p[9] = 1;
  p.set([10, 1, 2, 1, 10, 1, 2, 7], 12);
  const h = checksum(p, 0, 20);
  p[10] = h >> 8;
  p[11] = h & 255;
  p.set([8, 0, 0, 0, id >> 8, id & 255, seq >> 8, seq & 255, 1, 2, 3, 4], 20);
  const c = checksum(p, 20, 12);
  p[22] = c >> 8;
  p[23] = c & 255;
  return p;
}

let qjs: TestQuickJSWASMModule;
let srv: Scripted;
let dev: QuickJSDevice;
const events: Ev[] = [];
const fatal: Error[] = [];
const count = (e: string) => events.filter((x) => x.event === e).length;

test.before(async () => {
  qjs = new TestQuickJSWASMModule(await newQuickJSWASMModule(DEBUG_SYNC));
  srv = new Scripted();
  await srv.listen();
});

test.after(async () => {
  await srv.close();
});

test('the device bundle starts in QuickJS and gets its address through the socket bridge', async () => {
  dev = await QuickJSDevice.start({
    module: qjs,
    server: '127.0.0.1',
    port: srv.port,
    config: { id: 'qjs-1', collector: `${PEER}:5005`, interval: 0.1, minBackoff: 0.05, maxBackoff: 0.1, timeout: 2, ipv6: true },
    log: (event, fields) => events.push({ event, ...fields }),
    onFatal: (e) => fatal.push(e),
  });
  await until('ready', () => count('ready') === 1);
  const ready = events.find((e) => e.event === 'ready')!;
  assert.is(ready.address, ADDR);
  assert.is(ready.prefix, 24);
  assert.is(ready.server, 'simplevpn');
  assert.equal(
    events.filter((e) => e.event === 'memory').map((e) => e.phase),
    ['empty', 'loaded'],
  );
  assert.is(readU32(srv.requests[0], SRC), 0, 'a dynamic request first');
});

test('telemetry: UDP to the collector with valid checksums and JSON readings whose seq increases', async () => {
  await until('three readings', () => srv.packets.filter((p) => p[9] === 17).length >= 3);
  const udp = srv.packets.filter((p) => p[9] === 17);
  let last = 0;
  for (const p of udp) {
    assert.is(checksum(p, 0, 20), 0, 'IP header checksum');
    assert.is(readU32(p, 12), ip(ADDR));
    assert.is(readU32(p, 16), ip(PEER));
    assert.is((p[22] << 8) | p[23], 5005);
    const r = JSON.parse(String.fromCharCode(...p.subarray(28)));
    assert.is(r.id, 'qjs-1');
    assert.ok(r.seq > last, `seq ${r.seq} after ${last}`);
    last = r.seq;
    assert.type(r.uptime_s, 'number');
    assert.type(r.temp_c, 'number');
  }
});

test('an echo request through the bridge comes back as an echo reply', async () => {
  srv.last.write(echoRequest(0x4242, 5));
  await until('echo reply', () => srv.packets.some((p) => p[9] === 1));
  const r = srv.packets.find((p) => p[9] === 1)!;
  assert.is(r[20], 0, 'echo reply');
  assert.is((r[24] << 8) | r[25], 0x4242);
  assert.is((r[26] << 8) | r[27], 5);
  assert.equal(Array.from(r.subarray(28)), [1, 2, 3, 4]);
  assert.is(checksum(r, 20, r.length - 20), 0);
});

test('an ICMPv6 echo request (ping -6) to its IPv6 address through the bridge comes back as an echo reply', async () => {
  const m = Uint8Array.of(128, 0, 0, 0, 0x43, 0x21, 0, 6, 9, 8, 7, 6);
  const req = packet6(PEER6, ADDR6, m, { next: 58 });
  const c = icmp6Verify(req);
  req[42] = c >> 8;
  req[43] = c & 255;
  srv.last.write(req);
  await until('echo reply', () => srv.packets.some((p) => p[0] >> 4 === 6));
  const r = srv.packets.find((p) => p[0] >> 4 === 6)!;
  assert.is(r[40], 129, 'echo reply');
  assert.equal(Array.from(r.subarray(8, 24)), Array.from(ADDR6));
  assert.equal(Array.from(r.subarray(24, 40)), Array.from(PEER6));
  assert.equal(Array.from(r.subarray(44)), [0x43, 0x21, 0, 6, 9, 8, 7, 6]);
  assert.is(icmp6Verify(r), 0);
});

test('the server drops the connection: the device reconnects, asks for its old address and gets it', async () => {
  const from = events.length;
  srv.last.destroy();
  await until('ready again', () => events.slice(from).some((e) => e.event === 'ready'));
  assert.ok(events.slice(from).some((e) => e.event === 'down'));
  assert.is(srv.requests.length, 2);
  assert.is(readU32(srv.requests[1], SRC), ip(ADDR), 'the second request names the address');
  assert.equal(fatal, []);
});

test('memory: the engine reports its heap; stop() leaves no socket, timer or handle', async () => {
  const m = dev.memory();
  assert.ok(m.memory_used_size > 50_000 && m.memory_used_size < 1024 * 1024, `memory_used_size ${m.memory_used_size}`);
  assert.ok(m.js_func_code_size > 0);
  const left = dev.stop();
  assert.equal(left, { sockets: 0, timers: 0 });
  assert.ok(events.some((e) => e.event === 'stopped'));
  await until('the server sees the close', () => srv.last.destroyed || srv.last.readableEnded);
  qjs.disposeAll();
  qjs.assertNoMemoryAllocated();
});

test('a device that throws at start (a bad collector) is reported through onFatal and still frees everything', async () => {
  const errs: Error[] = [];
  const d = await QuickJSDevice.start({
    module: qjs,
    server: '127.0.0.1',
    port: srv.port,
    config: { id: 'bad', collector: 'nowhere' },
    log: () => {},
    onFatal: (e) => errs.push(e),
  });
  assert.is(errs.length, 1);
  assert.match(errs[0].message, /collector/);
  d.stop();
  qjs.disposeAll();
  qjs.assertNoMemoryAllocated();
});

test('a socket the host cannot even open reaches the guest as a close, and the device retries', async () => {
  const evs: Ev[] = [];
  const errs: Error[] = [];
  const d = await QuickJSDevice.start({
    module: qjs,
    server: '127.0.0.1',
    port: 70000, // net.connect throws on it
    config: { id: 'no-port', collector: `${PEER}:5005`, minBackoff: 0.02, maxBackoff: 0.05 },
    log: (event, fields) => evs.push({ event, ...fields }),
    onFatal: (e) => errs.push(e),
  });
  await until('two failed attempts', () => evs.filter((e) => e.event === 'down').length >= 2);
  const down = evs.find((e) => e.event === 'down')!;
  assert.is(down.reason, 'connect_failed');
  assert.match(String(down.detail), /ERR_SOCKET_BAD_PORT/);
  assert.equal(errs, [], 'no exception reached the guest');
  assert.equal(d.stop(), { sockets: 0, timers: 0 });
  qjs.disposeAll();
  qjs.assertNoMemoryAllocated();
});

test.run();
