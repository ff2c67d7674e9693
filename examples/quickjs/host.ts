// The host side of the device in QuickJS: what a microcontroller's firmware would provide
// to its JavaScript engine, and nothing more. A TCP socket bridge (the guest asks, the host
// opens a real node:net connection and shuttles bytes both ways) and timers. The guest runs
// the unmodified dist/examples/device.iife.js plus the adapter of guest.ts.
//
// Every call into the guest goes through one function (guest.event) with a time limit, and
// every handle the host creates is disposed before it returns; stop() tears the runtime
// down, which QuickJS refuses (it aborts) if any object is still referenced.

import net from 'node:net';
import { readFileSync } from 'node:fs';
import { newQuickJSWASMModule, RELEASE_SYNC } from 'quickjs-emscripten';
import type { QuickJSContext, QuickJSHandle, QuickJSWASMModule } from 'quickjs-emscripten';
import type { RunnerOptions } from '../device/cli.js';

const BUNDLES = new URL('../../../examples/', import.meta.url); // dist/js/examples/quickjs -> dist/examples

export interface HostOptions extends RunnerOptions {
  /** Events from the guest and from the host itself. */
  log(event: string, fields: Record<string, unknown>, level?: string): void;
  /** Called once when the guest throws or runs away: the firmware would reset. */
  onFatal?(err: Error): void;
  /** Bytes the runtime may allocate (1 MiB). */
  memoryLimit?: number;
  /** Bytes queued on a socket before host.write() refuses (64 KiB). */
  sendBuffer?: number;
  /** Milliseconds one call into the guest may run (1000). */
  callLimit?: number;
  /** The QuickJS build; RELEASE_SYNC by default (tests pass a TestQuickJSWASMModule). */
  module?: Pick<QuickJSWASMModule, 'newContext'>;
}

/**
 * The figures of QuickJS's JS_ComputeMemoryUsage that matter for sizing a heap.
 * memory_used_size is QuickJS's own estimate of the bytes its objects, atoms, shapes,
 * strings, functions and buffers take; this WebAssembly build cannot report the
 * allocator's true footprint (its dump says "malloc_usable_size unavailable").
 */
export interface Memory {
  memory_used_size: number;
  malloc_count: number;
  obj_count: number;
  atom_size: number;
  shape_size: number;
  str_size: number;
  js_func_size: number;
  js_func_code_size: number;
  binary_object_size: number;
}

interface Conn {
  sock: net.Socket;
  closed: boolean;
  refused: boolean;
}

export class QuickJSDevice {
  private readonly vm: QuickJSContext;
  private readonly eventFn: QuickJSHandle;
  private readonly conns = new Map<number, Conn>();
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly closing = new Set<number>(); // closed by the guest, onClose not yet delivered
  private nextId = 1;
  private deadline = 0;
  private stopped = false;
  private failed = false;

  private constructor(
    module: Pick<QuickJSWASMModule, 'newContext'>,
    private readonly o: HostOptions,
  ) {
    // Read first: nothing to free if a bundle is missing.
    const device = readFileSync(new URL('device.iife.js', BUNDLES), 'utf8');
    const adapter = readFileSync(new URL('quickjs-guest.iife.js', BUNDLES), 'utf8');
    const vm = (this.vm = module.newContext());
    const rt = vm.runtime;
    rt.setMemoryLimit(o.memoryLimit ?? 1024 * 1024);
    rt.setInterruptHandler(() => Date.now() > this.deadline);
    this.memoryEvent('empty');
    this.natives();
    const ok = this.run(device, 'device.iife.js') && this.run(adapter, 'quickjs-guest.iife.js');
    if (!ok) {
      vm.dispose();
      throw new Error('the device bundles did not load in QuickJS (see guest_error)');
    }
    this.memoryEvent('loaded');
    const guest = vm.getProp(vm.global, 'guest');
    this.eventFn = vm.getProp(guest, 'event');
    guest.dispose();
    // The device starts in the guest, with its configuration passed as JSON. A throw here
    // (a bad collector, say) is reported through onFatal like any other guest error.
    this.run(`var dev = device.start(guest.platform(${JSON.stringify(o.server)}, ${o.port}), ${JSON.stringify(o.config)});`, 'start.js');
  }

  static async start(o: HostOptions): Promise<QuickJSDevice> {
    return new QuickJSDevice(o.module ?? (await newQuickJSWASMModule(RELEASE_SYNC)), o);
  }

  /** The runtime's memory now (computeMemoryUsage). */
  memory(): Memory {
    const h = this.vm.runtime.computeMemoryUsage();
    const m = this.vm.dump(h) as Record<string, number>;
    h.dispose();
    return {
      memory_used_size: m.memory_used_size,
      malloc_count: m.malloc_count,
      obj_count: m.obj_count,
      atom_size: m.atom_size,
      shape_size: m.shape_size,
      str_size: m.str_size,
      js_func_size: m.js_func_size,
      js_func_code_size: m.js_func_code_size,
      binary_object_size: m.binary_object_size,
    };
  }

  /** QuickJS's own table (JS_DumpMemoryUsage). */
  dumpMemory(): string {
    return this.vm.runtime.dumpMemoryUsage();
  }

  memoryEvent(phase: string): void {
    this.o.log('memory', { phase, ...this.memory() });
  }

  /** Evaluates guest code and returns its value as JSON-able data (for tests and reports). */
  eval(code: string): unknown {
    if (this.stopped) throw new Error('the runtime is gone');
    this.deadline = Date.now() + (this.o.callLimit ?? 1000);
    const r = this.vm.evalCode(code, 'eval.js', { type: 'global' });
    if (r.error) {
      const e = this.vm.dump(r.error);
      r.error.dispose();
      throw new Error('guest: ' + JSON.stringify(e));
    }
    const v = this.vm.dump(r.value);
    r.value.dispose();
    return v;
  }

  /**
   * Stops the device in the guest (it closes its socket and timers), then checks the guest
   * holds nothing, closes what the host still has, and frees the runtime.
   */
  stop(): { sockets: number; timers: number } {
    let left = { sockets: 0, timers: 0 };
    if (this.stopped) return left;
    if (!this.failed) {
      if (this.run('dev.stop()', 'stop.js')) {
        for (const id of this.closing) {
          this.closing.delete(id);
          this.deliver('close', id);
        }
        const p = this.eval('guest.pending()') as number[];
        left = { sockets: p[0], timers: p[1] };
        this.memoryEvent('stopped');
      }
    }
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const c of this.conns.values()) c.sock.destroy();
    this.conns.clear();
    this.eventFn.dispose();
    // The context owns its runtime (module.newContext): this frees both.
    this.vm.dispose();
    return left;
  }

  /** Delivers one host event to the guest: guest.event(kind, id, data, detail). */
  private deliver(kind: string, id: number, data?: Buffer | string, detail?: string): void {
    if (this.stopped || this.failed) return;
    const vm = this.vm;
    const args = [vm.newString(kind), vm.newNumber(id)];
    if (typeof data === 'string') args.push(vm.newString(data));
    else if (data) args.push(vm.newArrayBuffer(data.buffer.slice(data.byteOffset, data.byteOffset + data.length))); // copied into the guest heap
    if (detail !== undefined) args.push(vm.newString(detail));
    this.deadline = Date.now() + (this.o.callLimit ?? 1000);
    const r = vm.callFunction(this.eventFn, vm.undefined, args);
    for (const a of args) a.dispose();
    if (r.error) return this.fail(r.error, kind);
    r.value.dispose();
    this.jobs();
  }

  /** Evaluates a global script, discarding its value; false (and onFatal) when it threw. */
  private run(code: string, file: string): boolean {
    this.deadline = Date.now() + (this.o.callLimit ?? 1000) * 5;
    const r = this.vm.evalCode(code, file, { type: 'global' });
    if (r.error) {
      this.fail(r.error, file);
      return false;
    }
    r.value.dispose();
    this.jobs();
    return true;
  }

  /** Promise jobs the guest queued (the device queues none; a port's code might). */
  private jobs(): void {
    const rt = this.vm.runtime;
    if (!rt.hasPendingJob()) return;
    const r = rt.executePendingJobs();
    if (r.error) this.fail(r.error, 'job');
  }

  private fail(errHandle: QuickJSHandle, where: string): void {
    const e = this.vm.dump(errHandle) as { name?: string; message?: string; stack?: string } | string;
    errHandle.dispose();
    const err = new Error(typeof e === 'string' ? e : `${e?.name}: ${e?.message}`);
    this.o.log('guest_error', { where, error: err.message, stack: typeof e === 'object' ? e?.stack : undefined }, 'error');
    if (this.failed) return;
    this.failed = true;
    this.o.onFatal?.(err);
  }

  /** The natives: the whole of what the guest gets from its host. */
  private natives(): void {
    const vm = this.vm;
    const host = vm.newObject();
    const fn = (name: string, f: (...a: QuickJSHandle[]) => QuickJSHandle | void) => {
      const h = vm.newFunction(name, f);
      vm.setProp(host, name, h);
      h.dispose();
    };
    fn('connect', (addr, port) => {
      const id = this.nextId++;
      let sock: net.Socket;
      try {
        sock = net.connect({ host: vm.getString(addr), port: vm.getNumber(port) });
      } catch (e: any) {
        // A native never throws into the guest: the failure arrives as a 'close' event.
        this.closing.add(id);
        setImmediate(() => this.closing.delete(id) && this.deliver('close', id, 'connect_failed', e.code || e.message));
        return vm.newNumber(id);
      }
      const c: Conn = { sock, closed: false, refused: false };
      let opened = false;
      this.conns.set(id, c);
      sock.setNoDelay(true);
      const finish = (code: string, detail?: string) => {
        if (c.closed) return;
        c.closed = true;
        this.conns.delete(id);
        sock.destroy();
        this.deliver('close', id, code, detail);
      };
      sock.once('connect', () => {
        opened = true;
        this.deliver('open', id);
      });
      sock.on('data', (d: Buffer) => c.closed || this.deliver('data', id, d));
      sock.on('drain', () => {
        if (c.refused && !c.closed) {
          c.refused = false;
          this.deliver('writable', id);
        }
      });
      sock.on('end', () => finish('end', 'end of stream'));
      sock.on('error', (e: NodeJS.ErrnoException) => finish(opened ? 'error' : 'connect_failed', e.code || e.message));
      sock.on('close', () => finish('end'));
      return vm.newNumber(id);
    });
    fn('write', (id, data) => {
      const c = this.conns.get(vm.getNumber(id));
      if (!c || c.closed) return vm.false;
      if (c.sock.writableLength >= (this.o.sendBuffer ?? 64 * 1024)) {
        c.refused = true;
        return vm.false;
      }
      const view = vm.getArrayBuffer(data);
      const copy = Buffer.from(view.value); // out of the wasm heap before the lifetime ends
      view.dispose();
      c.sock.write(copy);
      return vm.true;
    });
    fn('close', (idH) => {
      const id = vm.getNumber(idH);
      const c = this.conns.get(id);
      if (!c || c.closed) return;
      c.closed = true;
      this.conns.delete(id);
      c.sock.destroy();
      // onClose follows close(), never inside it: the guest is still on the stack.
      this.closing.add(id);
      setImmediate(() => this.closing.delete(id) && this.deliver('close', id));
    });
    fn('setTimer', (ms) => {
      const id = this.nextId++;
      this.timers.set(
        id,
        setTimeout(() => {
          this.timers.delete(id);
          this.deliver('timer', id);
        }, Math.max(0, vm.getNumber(ms))),
      );
      return vm.newNumber(id);
    });
    fn('clearTimer', (idH) => {
      const id = vm.getNumber(idH);
      clearTimeout(this.timers.get(id));
      this.timers.delete(id);
    });
    fn('now', () => vm.newNumber(performance.now()));
    fn('log', (event, json) => {
      const fields = JSON.parse(vm.getString(json));
      const name = vm.getString(event);
      this.o.log(name, fields, name === 'down' ? 'warn' : 'info');
    });
    vm.setProp(vm.global, 'host', host);
    host.dispose();
  }
}
