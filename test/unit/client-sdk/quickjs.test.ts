// The SDK bundle in an embedded engine: dist/sdk/simplevpn-sdk.iife.js runs inside QuickJS
// (WebAssembly) with nothing from the host but a socket bridge and timers. The guest builds
// its Socket and Clock in plain JS on top of them; a scripted server on the host answers.
// Time is the host's fake clock, so nothing here waits for real.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ROOT } from '../../support/paths.js';
import { DEBUG_SYNC, TestQuickJSWASMModule, newQuickJSWASMModule, shouldInterruptAfterDeadline } from 'quickjs-emscripten';
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten';
import { KEEPALIVE, KIND_REQUEST, extKind, isKeepalive, isRequest, DST, SRC, readU32 } from '../../../protocol/index.js';
import { FakeClock, dataPacket, extReply, hex, ip } from '../../support/sdk-fakes.js';

const root = ROOT;
const SDK = readFileSync(root + 'dist/sdk/simplevpn-sdk.iife.js', 'utf8');

const plain = (b: Uint8Array) => hex(b).replace(/ /g, '');
const unplain = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

// The guest side: Socket and Clock over the host bridge, a tun that keeps what it gets.
const GUEST = String.raw`
var hex = function (b) { var s = ''; for (var i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16); return s; };
var unhex = function (s) { var b = new Uint8Array(s.length / 2); for (var i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16); return b; };

var handlers = {};
function connect(h) {
  var id = __host_connect();
  handlers[id] = h;
  return {
    write: function (d) { return __host_write(id, hex(d)) ? d.length : 0; },
    close: function () { __host_close(id); },
  };
}
function __open(id) { var h = handlers[id]; if (h) h.onOpen(); }
function __data(id, s) { var h = handlers[id]; if (h) h.onData(unhex(s)); }
function __closed(id) { var h = handlers[id]; delete handlers[id]; if (h) h.onClose('end'); }

var timers = {}, nextTimer = 1;
var clock = {
  now: function () { return __host_now(); },
  setTimeout: function (fn, ms) { var id = nextTimer++; timers[id] = fn; __host_setTimer(id, ms); return id; },
  clearTimeout: function (id) { if (timers[id]) { delete timers[id]; __host_clearTimer(id); } },
};
function __fire(id) { var fn = timers[id]; delete timers[id]; if (fn) fn(); }

var received = [], states = [];
var client = new simplevpn.Client({
  connect: connect,
  tun: { write: function (b, o, n) { received.push(hex(b.subarray(o, o + n))); } },
  clock: clock,
  keepalive: 1,
  timeout: 1,
  name: 'quickjs',
  onState: function (s) { states.push(s); },
});
client.start();
`;

interface Conn {
  id: number;
  writes: Uint8Array[];
  closedByGuest: boolean;
}

/** The host: bridge functions, a fake clock, and a scripted server behind the socket. */
class Host {
  readonly clock = new FakeClock();
  readonly conns: Conn[] = [];
  private readonly timers = new Map<number, unknown>();
  private readonly queue: Array<() => void> = [];

  constructor(readonly vm: QuickJSContext) {
    this.define('__host_connect', () => {
      const c: Conn = { id: this.conns.length, writes: [], closedByGuest: false };
      this.conns.push(c);
      // Connected a moment later, as a real socket would be.
      this.later(() => this.call(`__open(${c.id})`));
      return vm.newNumber(c.id);
    });
    this.define('__host_write', (id, data) => {
      const c = this.conns[vm.getNumber(id)];
      if (!c || c.closedByGuest) return vm.false;
      const bytes = unplain(vm.getString(data));
      c.writes.push(bytes);
      this.serve(c, bytes);
      return vm.true;
    });
    this.define('__host_close', (id) => {
      const c = this.conns[vm.getNumber(id)];
      if (c && !c.closedByGuest) {
        c.closedByGuest = true;
        this.later(() => this.call(`__closed(${c.id})`));
      }
    });
    this.define('__host_now', () => vm.newNumber(this.clock.now()));
    this.define('__host_setTimer', (id, ms) => {
      const n = vm.getNumber(id);
      this.timers.set(
        n,
        this.clock.setTimeout(() => {
          this.timers.delete(n);
          this.call(`__fire(${n})`);
        }, vm.getNumber(ms)),
      );
    });
    this.define('__host_clearTimer', (id) => {
      const n = vm.getNumber(id);
      this.clock.clearTimeout(this.timers.get(n));
      this.timers.delete(n);
    });
  }

  /** The scripted server: answers an address request and echoes keepalives. */
  serve(c: Conn, frame: Uint8Array) {
    if (isRequest(frame) && extKind(frame) === KIND_REQUEST) {
      this.later(() => this.send(c, extReply('10.1.2.7', { prefix: 24, gateway: ip('10.1.2.1'), mtu: 1400 })));
    } else if (isKeepalive(frame)) {
      this.later(() => this.send(c, KEEPALIVE));
    }
  }

  /** Delivers bytes from the server into the guest. */
  send(c: Conn, bytes: Uint8Array) {
    this.call(`__data(${c.id}, "${plain(bytes)}")`);
  }

  /** Evaluates guest code, then everything it caused, and returns the result as JSON-ish data. */
  call(code: string): unknown {
    const result = this.vm.evalCode(code);
    const handle: QuickJSHandle = this.vm.unwrapResult(result);
    const value = this.vm.dump(handle);
    handle.dispose();
    this.pump();
    return value;
  }

  /** Advances the fake clock; timers fire into the guest. */
  advance(ms: number) {
    this.clock.advance(ms);
  }

  get pendingTimers(): number {
    return this.timers.size;
  }

  private later(fn: () => void) {
    this.queue.push(fn);
  }

  private pumping = false;
  private pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (let i = 0; this.queue.length; i++) {
        if (i > 1000) throw new Error('host queue never drains');
        this.queue.shift()!();
      }
    } finally {
      this.pumping = false;
    }
  }

  private define(name: string, fn: (...args: QuickJSHandle[]) => QuickJSHandle | void) {
    const h = this.vm.newFunction(name, fn);
    this.vm.setProp(this.vm.global, name, h);
    h.dispose();
  }
}

type GuestState = { state: string; address?: string; prefix?: number; netmask?: string; gateway?: string | null; mtu?: number; server?: string; reason?: string };

let qjs: TestQuickJSWASMModule;
let host: Host;
const states = () => host.call('states') as GuestState[];
const lastState = () => states()[states().length - 1];

test.before(async () => {
  qjs = new TestQuickJSWASMModule(await newQuickJSWASMModule(DEBUG_SYNC));
  const vm = qjs.newContext();
  vm.runtime.setMemoryLimit(16 * 1024 * 1024);
  vm.runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + 20_000));
  host = new Host(vm);
});

test.after(() => {
  // Leaked handles make dispose() or the allocation check throw.
  qjs.disposeAll();
  qjs.assertNoMemoryAllocated();
});

test('the IIFE loads in QuickJS and defines simplevpn.Client', () => {
  host.call(SDK);
  assert.is(host.call('typeof simplevpn.Client'), 'function');
  assert.is(host.call('typeof require + typeof process + typeof setTimeout'), 'undefinedundefinedundefined', 'a bare engine');
});

test('the guest client connects through the bridge and asks for an address with an extension request', () => {
  host.call(GUEST);
  assert.is(host.conns.length, 1);
  const req = host.conns[0].writes[0];
  assert.ok(req, 'a request was written');
  assert.is(extKind(req), KIND_REQUEST);
  assert.is(readU32(req, SRC), 0);
  assert.is(readU32(req, DST), 0);
});

test('the extension reply makes the guest ready with prefix 24, gateway and mtu', () => {
  const s = lastState();
  assert.is(s.state, 'ready');
  assert.is(s.address, '10.1.2.7');
  assert.is(s.prefix, 24);
  assert.is(s.netmask, '255.255.255.0');
  assert.is(s.gateway, '10.1.2.1');
  assert.is(s.mtu, 1400);
  assert.is(s.server, 'simplevpn');
});

test('a packet the guest sends with client.send reaches the server byte for byte', () => {
  const up = dataPacket('10.1.2.7', '10.1.2.1', 33, 0x11);
  const before = host.conns[0].writes.length;
  assert.is(host.call(`client.send(unhex("${plain(up)}"))`), true);
  const writes = host.conns[0].writes.slice(before);
  assert.equal(writes, [up]);
  assert.is(host.call('client.stats.txPackets'), 1);
});

test('a packet from the server reaches the guest tun byte for byte', () => {
  const down = dataPacket('10.1.2.1', '10.1.2.7', 200, 0x77);
  host.send(host.conns[0], down);
  assert.equal(host.call('received'), [plain(down)]);
  assert.is(host.call('client.stats.rxPackets'), 1);
});

test('after 1 s of silence the guest writes the exact seed keepalive; the echo keeps it ready past the deadline', () => {
  const c = host.conns[0];
  const n = c.writes.length;
  host.advance(999);
  assert.is(c.writes.length, n, 'nothing before the interval');
  host.advance(1);
  assert.is(c.writes.length, n + 1);
  assert.is(hex(c.writes[n]), '45 14 00 00 00 00 00 00 40 00 00 00 ff ff ff ff ff ff ff ff');
  // The host echoed it at once; without the echo the client would go down 1 s later.
  host.advance(1000);
  assert.is(lastState().state, 'ready');
  assert.is(host.conns.length, 1, 'no reconnect');
  // A second of silence after the answer: the next keepalive, answered again.
  assert.is(host.call('client.stats.keepalives'), 2);
});

test('close() in the guest closes the socket, reports "closed" and leaves no timer on the host', () => {
  host.call('client.close()');
  assert.ok(host.conns[0].closedByGuest);
  assert.is(lastState().state, 'closed');
  assert.is(host.pendingTimers, 0);
  assert.is(host.clock.pending, 0);
  host.advance(60_000);
  assert.is(host.conns.length, 1, 'no reconnect after close');
});

test.run();
