// The host side of the xsnap bridge: Moddable's XS engine, as @agoric/xsnap builds it
// (xsnap-worker), driven from Node with real TCP sockets and timers, the way a firmware's C
// gives its engine natives. Tested by test/integration/engines/xs.test.ts; xsnap-guest.ts is
// the other half and documents the messages.
//
// The worker speaks netstrings on its fds 3 (to it) and 4 (from it): 'e' + code evaluates,
// 'm' + path runs a module file, '?' + bytes calls the guest's global handleCommand, 'q'
// quits; it answers '.' + meter JSON +
// \x01 + reply, or '!' + error, and while it runs it may send '?' + bytes (the guest's
// issueCommand), which the host must answer with '/' + bytes before it goes on. This file
// speaks that protocol itself: @agoric/xsnap's own Node API needs SES's lockdown in the host
// process. The meter carries XS's own memory figure: currentHeapCount, the slots in use (32
// bytes each on a 64-bit host, 16 on a 32-bit microcontroller).
//
//   const xs = XsnapBridge.start({ log: (event, fields) => console.log(event, fields) });
//   await xs.evaluate(readFileSync('dist/sdk/simplevpn-sdk.iife.js', 'utf8'));
//   await xs.load(); // the guest bundle, and handleCommand
//   await xs.evaluate('new simplevpn.Client({ connect: xsnapGuest.connect("192.0.2.10", 2002), clock: xsnapGuest.clock, tun, onState }).start()');

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';

/** What the worker reports after each evaluation or event. */
export interface XsMeter {
  /** Slots in use in XS's heap. */
  currentHeapCount: number;
  /** Computation spent, in XS's meter units. */
  compute: number;
  /** Bytes XS has allocated for its heaps (chunks and slots) so far. */
  allocate: number;
}

export interface XsnapBridgeOptions {
  /** Log lines from the guest (its xsnapGuest.log) and the bridge's own. */
  log?(event: string, fields: Record<string, unknown>): void;
  /** Called once when the guest throws from an event, or the worker dies. */
  onFatal?(err: Error): void;
  /** Bytes queued on a socket before a write takes nothing (64 KiB). */
  sendBuffer?: number;
  /** The xsnap-worker binary; by default @agoric/xsnap's release build. */
  worker?: string;
}

/** @agoric/xsnap's release worker for this platform. */
export function xsnapWorker(): string {
  const pkg = createRequire(import.meta.url).resolve('@agoric/xsnap/package.json');
  const os = process.platform === 'darwin' ? 'mac' : 'lin';
  return join(dirname(pkg), 'xsnap-native/xsnap/build/bin', os, 'release/xsnap-worker');
}

interface Pending {
  message: Buffer;
  resolve(r: { meter: XsMeter; reply: Buffer }): void;
  reject(e: Error): void;
}

interface Conn {
  sock: net.Socket;
  closed: boolean;
  refused: boolean;
}

const GUEST = new URL('../../../examples/xsnap-guest.iife.js', import.meta.url); // dist/js/examples/ports -> dist/examples

export class XsnapBridge {
  /** The meter of the last evaluation or event. */
  meter: XsMeter = { currentHeapCount: 0, compute: 0, allocate: 0 };
  private readonly proc: ChildProcess;
  private readonly toXs: Writable;
  private readonly queue: Pending[] = [];
  private current: Pending | null = null;
  private rx: Buffer = Buffer.alloc(0);
  private readonly conns = new Map<number, Conn>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private nextConn = 1;
  private failed = false;
  private stopped = false;
  private readonly exited: Promise<void>;

  private constructor(private readonly o: XsnapBridgeOptions) {
    // A process group of its own: a Ctrl-C at the terminal (SIGINT to the host's group) is the
    // host's to handle, and the host then stops the guest cleanly. If the host dies, the worker
    // reads the end of its pipe and exits.
    this.proc = spawn(o.worker ?? xsnapWorker(), ['simplevpn'], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe'], detached: true });
    this.toXs = this.proc.stdio[3] as Writable;
    (this.proc.stdio[4] as Readable).on('data', (d: Buffer) => this.received(d));
    this.toXs.on('error', () => {}); // the worker died: reported by 'exit'
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, signal) => {
        if (!this.stopped) this.fatal(new Error(`xsnap-worker exited (${signal ?? code})`));
        const err = new Error('xsnap-worker is gone');
        for (const p of this.current ? [this.current, ...this.queue] : this.queue) p.reject(err);
        this.queue.length = 0;
        this.current = null;
        resolve();
      }),
    );
  }

  static start(o: XsnapBridgeOptions = {}): XsnapBridge {
    return new XsnapBridge(o);
  }

  /** Evaluates `code` as a script in XS (sloppy unless it says 'use strict'). */
  evaluate(code: string): Promise<{ meter: XsMeter; reply: Buffer }> {
    return this.command(Buffer.from('e' + code));
  }

  /** Runs the file at `path` as a module (how Moddable's manifests load code). */
  async importModule(path: string): Promise<{ meter: XsMeter; reply: Buffer }> {
    return this.command(Buffer.from('m' + path));
  }

  /** Loads the guest bundle and makes its handleCommand the worker's. */
  async load(guest = readFileSync(GUEST, 'utf8')): Promise<void> {
    await this.evaluate(guest);
    await this.evaluate('globalThis.handleCommand = xsnapGuest.handleCommand;');
  }

  /** Stops the worker and closes every socket and timer the guest left. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const c of this.conns.values()) c.sock.destroy();
    this.conns.clear();
    this.toXs.end(netstring(Buffer.from('q')));
    const kill = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(kill);
  }

  /** Sockets and timers the host still holds for the guest. */
  held(): { sockets: number; timers: number } {
    return { sockets: this.conns.size, timers: this.timers.size };
  }

  private command(message: Buffer): Promise<{ meter: XsMeter; reply: Buffer }> {
    return new Promise((resolve, reject) => {
      if (this.stopped) return reject(new Error('the bridge is closed'));
      this.queue.push({ message, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.current || !this.queue.length) return;
    this.current = this.queue.shift()!;
    this.toXs.write(netstring(this.current.message));
  }

  /** An event for the guest: handleCommand(op id data), after whatever runs now. */
  private deliver(op: string, id: number, data?: Buffer): void {
    if (this.stopped || this.failed) return;
    const m = Buffer.alloc(6 + (data ? data.length : 0));
    m[0] = 0x3f; // '?'
    m[1] = op.charCodeAt(0);
    m.writeUInt32BE(id, 2);
    if (data) data.copy(m, 6);
    this.command(m).catch((e: Error) => this.fatal(e));
  }

  private fatal(e: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.o.log?.('xs_fatal', { error: e.message });
    this.o.onFatal?.(e);
  }

  private received(d: Buffer): void {
    this.rx = this.rx.length ? Buffer.concat([this.rx, d]) : d;
    for (;;) {
      const colon = this.rx.indexOf(0x3a);
      if (colon < 0) return;
      const len = Number(this.rx.toString('latin1', 0, colon));
      if (this.rx.length < colon + len + 2) return;
      const m = this.rx.subarray(colon + 1, colon + 1 + len);
      this.rx = this.rx.subarray(colon + len + 2);
      this.message(m);
    }
  }

  private message(m: Buffer): void {
    const kind = m[0];
    if (kind === 0x3f) {
      // '?': the guest's issueCommand, answered before it goes on.
      this.toXs.write(netstring(Buffer.concat([Buffer.from('/'), this.query(m.subarray(1))])));
      return;
    }
    const p = this.current;
    this.current = null;
    if (kind === 0x2e) {
      // '.' meter-json \x01 reply
      const sep = m.indexOf(1, 1);
      const meter = JSON.parse(m.toString('latin1', 1, sep < 0 ? m.length : sep));
      this.meter = { currentHeapCount: meter.currentHeapCount, compute: meter.compute, allocate: meter.allocate };
      p?.resolve({ meter: this.meter, reply: Buffer.from(m.subarray(sep < 0 ? m.length : sep + 1)) });
    } else p?.reject(new Error('XS: ' + m.toString('utf8', 1)));
    this.next();
  }

  /** One request of the guest: opcode, id, data. Never throws into the guest. */
  private query(q: Buffer): Buffer {
    const op = String.fromCharCode(q[0]);
    const id = q.length >= 5 ? q.readUInt32BE(1) : 0;
    const u32 = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n >>> 0);
      return b;
    };
    switch (op) {
      case 'c':
        return u32(this.open(q.toString('latin1', 1)));
      case 'w': {
        const c = this.conns.get(id);
        if (!c || c.closed) return u32(0);
        if (c.sock.writableLength >= (this.o.sendBuffer ?? 64 * 1024)) {
          c.refused = true;
          return u32(0);
        }
        c.sock.write(Buffer.from(q.subarray(5))); // a copy: q is the receive buffer
        return u32(q.length - 5);
      }
      case 'x': {
        const c = this.conns.get(id);
        if (c) this.finish(id, c, 'end', 'closed');
        break;
      }
      case 't': {
        clearTimeout(this.timers.get(id));
        const t = setTimeout(() => {
          this.timers.delete(id);
          this.deliver('t', id);
        }, q.readUInt32BE(5));
        this.timers.set(id, t);
        break;
      }
      case 'u':
        clearTimeout(this.timers.get(id));
        this.timers.delete(id);
        break;
      case 'l': {
        const { event, fields } = JSON.parse(q.toString('latin1', 1));
        this.o.log?.(event, fields);
        break;
      }
    }
    return Buffer.alloc(0);
  }

  private open(where: string): number {
    const id = this.nextConn++;
    const colon = where.lastIndexOf(':');
    const c: Conn = { sock: new net.Socket(), closed: false, refused: false };
    this.conns.set(id, c);
    let opened = false;
    const s = c.sock;
    s.setNoDelay(true);
    s.once('connect', () => {
      opened = true;
      this.deliver('o', id);
    });
    s.on('data', (d: Buffer) => c.closed || this.deliver('d', id, d));
    s.on('drain', () => {
      if (c.refused && !c.closed) {
        c.refused = false;
        this.deliver('w', id);
      }
    });
    s.on('end', () => this.finish(id, c, 'end', 'end of stream'));
    s.on('error', (e: NodeJS.ErrnoException) => this.finish(id, c, opened ? 'error' : 'connect_failed', e.code || e.message));
    s.on('close', () => this.finish(id, c, 'end'));
    s.connect(Number(where.slice(colon + 1)), where.slice(0, colon));
    return id;
  }

  /** The connection is gone: the guest hears it once, as an event. */
  private finish(id: number, c: Conn, code: string, detail = ''): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(id);
    c.sock.destroy();
    this.deliver('e', id, Buffer.from(code + '\n' + detail, 'latin1'));
  }
}

function netstring(b: Buffer): Buffer {
  return Buffer.concat([Buffer.from(b.length + ':'), b, Buffer.from(',')]);
}
