// protocol/control.ts, as both ends read it: the decoders (isKeepalive, isRequest, extKind,
// eachTlv, readConfig, readRefusal) on arbitrary frames, and the SDK's client reading an
// arbitrary server stream in place of the reply to its request.
//
// Decoders: TLVs are views inside the frame that tile it from byte 24 up to at most a
// truncated last one; what they decode re-encodes (extMessage, configTlvs) to frames that
// decode the same; a reply's lease is a copy, not a view of the receive buffer; refusal text
// is ASCII. Client: nothing thrown; every 'ready' it reports is usable as it is (an address
// that is neither 0.0.0.0 nor 255.255.255.255, a prefix of 1-32 and the netmask it names,
// routes with prefixes of 0-32, an MTU and a keepalive in range); packets handed to the tun
// are whole IP packets; nothing written to a closed socket.
//
// Input: [mode: bit 0 seed client, bits 1-7 where the stream is cut] [frame / stream...]
import { Client, type StateInfo } from '../../client-sdk/src/client.js';
import {
  ALL, ANY, type Config, EXT_START, KEEPALIVE, KIND_REFUSAL, KIND_REPLY, KIND_REQUEST, PROTO_EXT, T_GATEWAY, T_IDLE_TIMEOUT, T_KEEPALIVE, T_LEASE, T_MTU, T_PREFIX,
  T_REASON, T_ROUTE, T_TEXT, type Tlv, configTlvs, eachTlv, extKind, extMessage, formatIPv4, isKeepalive, isRequest, parseIPv4, prefixToMask,
  readConfig, readRefusal, readU32, refusal,
} from '../../protocol/index.js';
import { FakeClock, FakeNet, extReply, seedReply } from '../../test/support/sdk-fakes.js';
import { protocolExamples } from '../engine/seeds.js';
import { type FuzzTarget, check } from '../engine/target.js';

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const tlvsOf = (f: Uint8Array): Tlv[] => {
  const t: Tlv[] = [];
  eachTlv(f, (type, value) => t.push([type, value]));
  return t;
};

/** A configuration as text, its fields in one order. */
const configText = (c: Config): string =>
  JSON.stringify([c.prefix, c.gateway, c.mtu, c.keepalive, c.idleTimeout, c.routes, c.lease && Array.from(c.lease)]);

function decoders(f: Uint8Array): void {
  const v4 = f.length >= 20 && f[0] >> 4 === 4;
  check(isKeepalive(f) === (v4 && readU32(f, 12) === ALL && readU32(f, 16) === ALL), 'isKeepalive');
  check(isRequest(f) === (v4 && readU32(f, 16) === ANY), 'isRequest');
  const kind = extKind(f);
  if (kind !== 0) check(v4 && f.length >= EXT_START && f[9] === PROTO_EXT && f[20] === 0x53 && f[21] === 0x56 && f[22] === kind, `extKind ${kind} of a frame without the marker`);

  // TLVs tile the frame from byte 24.
  let at = EXT_START;
  const tlvs: Tlv[] = [];
  eachTlv(f, (type, value) => {
    check(value.buffer === f.buffer && value.byteOffset === f.byteOffset + at + 2, 'a TLV value is not the view of its bytes in the frame');
    check(type === f[at] && value.length === f[at + 1], 'a TLV read with the wrong type or length');
    at += 2 + value.length;
    tlvs.push([type, value]);
  });
  check(at <= Math.max(EXT_START, f.length), 'TLVs read past the frame');
  // What is left is no whole TLV: fewer than 2 bytes, or a length running past the end.
  check(f.length - at < 2 || at + 2 + f[at + 1] > f.length, 'eachTlv stopped before a whole TLV');

  // A reply's configuration: re-encoded, it reads the same.
  const work = Uint8Array.from(f);
  const c = readConfig(work);
  const lease = c.lease && Uint8Array.from(c.lease);
  work.fill(0xaa);
  check(!lease || same(c.lease!, lease), "a reply's lease changed with the receive buffer");
  work.set(f);
  const again = readConfig(extMessage(ANY, 1, KIND_REPLY, configTlvs(c)));
  check(configText(again) === configText(c), `configuration does not survive re-encoding: ${configText(c)} -> ${configText(again)}`);
  for (const [t, v] of tlvs) {
    const n = v.length;
    if (t === T_PREFIX && n === 1 && v[0] <= 32) check(c.prefix !== undefined, 'prefix TLV not read');
    if (t === T_GATEWAY && n === 4) check(c.gateway !== undefined, 'gateway TLV not read');
    if ((t === T_MTU || t === T_KEEPALIVE || t === T_IDLE_TIMEOUT) && n === 2) check(c[t === T_MTU ? 'mtu' : t === T_KEEPALIVE ? 'keepalive' : 'idleTimeout'] !== undefined, `TLV ${t} not read`);
    if (t === T_LEASE) check(c.lease !== undefined, 'lease TLV not read');
  }
  check(c.routes.length === tlvs.filter(([t, v]) => t === T_ROUTE && v.length === 5 && v[4] <= 32).length, 'routes miscounted');
  check((c.prefix === undefined || c.prefix <= 32) && c.routes.every(([, p]) => p <= 32), 'a prefix length above 32 read');

  // The same TLVs in a message of our own read the same.
  const copy = extMessage(readU32(f, 12), readU32(f, 16), kind || KIND_REPLY, tlvs);
  const back = tlvsOf(copy);
  check(back.length === tlvs.length && back.every(([t, v], i) => t === tlvs[i][0] && same(v, tlvs[i][1])), 'TLVs do not survive re-encoding');

  const r = readRefusal(f);
  check(r.code >= 0 && r.code <= 255 && /^[\x00-\x7f]*$/.test(r.text), 'refusal read out of range');
  check(r.code === 0 || tlvs.some(([t, v]) => t === T_REASON && v.length === 1 && v[0] === r.code), 'refusal code from nowhere');
  check(r.text === '' || tlvs.some(([t]) => t === T_TEXT), 'refusal text from nowhere');
}

function isWholePacket(p: Uint8Array): boolean {
  const v = p[0] >> 4;
  if (v === 4) return p.length === Math.max((p[0] & 15) * 4, (p[2] << 8) | p[3]);
  return v === 6 && p.length === 40 + ((p[4] << 8) | p[5]);
}

function client(stream: Uint8Array, seed: boolean, cutAt: number): void {
  const clock = new FakeClock();
  const net = new FakeNet();
  const states: StateInfo[] = [];
  const tun: Uint8Array[] = [];
  const c = new Client({ connect: net.connect, tun: { write: (b, o, n) => void tun.push(b.slice(o, o + n)) }, clock, random: () => 0.5, seed, onState: (s) => states.push(s) });
  c.start();
  const s = net.last;
  s.open();
  // The receive buffer is reused, as a platform may: the client must keep no view of it.
  const chunk = (b: Uint8Array) => {
    const buf = Uint8Array.from(b);
    s.deliver(buf);
    buf.fill(0xcc);
  };
  const cut = Math.min(stream.length, cutAt);
  chunk(stream.subarray(0, cut));
  if (!s.closed) chunk(stream.subarray(cut));
  // A while later: keepalives, the server's silence, reconnects.
  clock.advance(20_000);
  clock.advance(70_000);
  c.close();

  for (const st of states) {
    if (st.state !== 'ready') continue;
    const a = parseIPv4(st.address);
    check(a > 0 && a !== ALL, `ready with address ${st.address}`);
    check(Number.isInteger(st.prefix) && st.prefix >= 1 && st.prefix <= 32, `ready with prefix ${st.prefix}`);
    check(st.netmask === formatIPv4(prefixToMask(st.prefix)), `ready with netmask ${st.netmask} for prefix ${st.prefix}`);
    check(st.routes.every((r) => r.prefix >= 0 && r.prefix <= 32), `ready with a route prefix out of range: ${JSON.stringify(st.routes)}`);
    check(st.mtu >= 1 && st.mtu <= 65535, `ready with MTU ${st.mtu}`);
    check(st.keepalive > 0 && Number.isFinite(st.keepalive), `ready with keepalive ${st.keepalive}`);
  }
  for (const p of tun) check(isWholePacket(p), 'the tun was handed a partial or malformed packet');
  for (const sock of net.sockets) check(sock.lateWrites === 0, 'written to a closed socket');
}

export const controlTarget: FuzzTarget = {
  name: 'control',
  about: 'protocol/control.ts decoders on arbitrary frames; the SDK client reading an arbitrary reply stream',
  covers: ['protocol/control.js', 'client-sdk/src/client.js'],
  ciRuns: 3000,
  maxLength: 2048,
  dictionary: [
    [0x45, 0x14], [0x40, 0xfd], [0x53, 0x56, 0x01, 0x01], [0x53, 0x56, 0x02, 0x01], [0x53, 0x56, 0x03, 0x01],
    [0x01, 0x01, 0x10], [0x02, 0x04, 10, 0, 0, 1], [0x03, 0x02, 0x05, 0xdc], [0x04, 0x02, 0, 15], [0x05, 0x02, 0, 60],
    [0x06, 0x05, 192, 168, 50, 0, 24], [0x07, 0x10], [0x08, 0x01, 0x01], [0x09, 0x04, 0x74, 0x65, 0x78, 0x74], [0xff, 0xff, 0xff, 0xff],
  ].map((a) => Uint8Array.from(a)),
  seeds() {
    const frames = [
      ...protocolExamples(),
      KEEPALIVE,
      extReply('10.0.0.5', { prefix: 24, mtu: 1500, keepalive: 15, routes: [[0xc0a83200, 24]], lease: new Uint8Array(16) }),
      seedReply('10.0.0.7'),
      refusal(0, 1, 'address in use'),
      extMessage(0, 0, KIND_REQUEST, []),
      extMessage(0, 0, KIND_REFUSAL, []),
    ];
    return frames.flatMap((f) => [Uint8Array.from([0, ...f]), Uint8Array.from([1 | (20 << 1), ...f, ...KEEPALIVE])]);
  },
  run(input) {
    const mode = input[0] ?? 0;
    const rest = input.subarray(1);
    decoders(rest);
    client(rest, (mode & 1) === 1, mode >> 1);
  },
};
