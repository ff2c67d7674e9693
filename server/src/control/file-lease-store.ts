// The lease store of a server on its own whose leases survive a restart or a crash
// (--state FILE): the in-memory pool, plus a record of each lease (which client holds it,
// the hash of its lease token) kept in one JSON file.
//
// Writing. The whole state is written to FILE.tmp, fsynced, renamed over FILE, and the
// directory fsynced: FILE is always either the old state or the new one, never half of
// each. Writes are batched: changes made within COALESCE_MS, or while a write is under
// way, go into the next write together. An assignment is answered (the client gets its
// address) only once a write that holds it has reached the disk; a write that fails refuses
// the assignments waiting for it (lease_unavailable) and leaves FILE as it was. A release
// is not waited for: a crash before the next write (within COALESCE_MS plus one write)
// leaves that lease in FILE, kept for its client as below. So a crash can make an address
// wait longer to be free again, never give one address to two clients.
//
// After a start, each lease found in FILE is kept for the client it records for the idle
// timeout (--idle-timeout): that client gets it back by presenting its lease token (the SDK
// and simplevpn-client ask for the address they had, with the token), or its auth id when
// the record's client had proved one. Anyone else asking for it is refused address_in_use
// until then; then it is free again.
//
// A file that cannot be read as a state file is not dropped: it is renamed
// FILE.corrupt-<time>, a log line names both and the way out, and the server starts with
// no leases.

import { randomBytes } from 'node:crypto';
import { open as openFile, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { formatIPv4, parseIPv4 } from '../../../protocol/index.js';
import { type LeaseRecord, mayReclaim, parseRecord, presentedOf, recordOf } from './lease-record.js';
import { AddressPool } from './address-pool.js';
import type { Allocation, LeaseClaim, LeaseInfo, LeaseStore, LeaseStoreHealth, LeaseStoreHooks } from './lease-store.js';
import { PoolStore } from './memory-lease-store.js';

const FORMAT = 'simplevpn-leases 1';
/** Changes within this window go to the disk in one write. */
export const COALESCE_MS = 2;
/** After a failed write, the next try. */
const RETRY_MS = 1000;

/** How the store reaches the disk; tests pass their own. */
export interface StateIo {
  /** Replaces `file` with `text` atomically, on the disk when it resolves. */
  write(file: string, text: string): Promise<void>;
}

/** Writes FILE.tmp, fsyncs it, renames it over FILE and fsyncs the directory. */
export async function writeAtomic(file: string, text: string): Promise<void> {
  const tmp = file + '.tmp';
  const h = await openFile(tmp, 'w', 0o600);
  try {
    await h.writeFile(text);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, file);
  const d = await openFile(dirname(file), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export interface FileStoreOptions {
  file: string;
  network: number;
  prefix: number;
  /** Addresses never handed out (the server's own). */
  reserved: number[];
  /** How long a lease found in the file at start is kept for its client (ms). */
  keepMs: number;
  hooks: LeaseStoreHooks;
  io?: StateIo;
  /** Monotonic ms (performance.now). */
  now?: () => number;
}

interface Held extends LeaseRecord {
  /** The connection holding it; 0: found in the file at start, its client not back yet. */
  readonly holder: number;
}

export class FileLeaseStore extends PoolStore implements LeaseStore {
  readonly file: string;
  private readonly leases = new Map<number, Held>();
  /** Each record's line in the file, made when it changes. */
  private readonly lines = new Map<number, string>();
  private readonly o: FileStoreOptions;
  private readonly io: StateIo;
  private readonly now: () => number;
  /** Leases from the file whose client is not back, and until when they are kept. */
  private kept = 0;
  private keptUntil = 0;
  private keptTimer: NodeJS.Timeout | null = null;
  private waiters: Array<(ok: boolean) => void> = [];
  private timer: NodeJS.Timeout | null = null;
  private writing = false;
  private retrying = false;
  private dirty = false;
  private frozen = false;
  /** open() has read the file: close() may write it. */
  private opened = false;
  /** The last write's failure, or null. */
  private failure: string | null = null;
  writes = 0;
  writeFailures = 0;

  constructor(o: FileStoreOptions) {
    super(new AddressPool(o.network, o.prefix, o.reserved));
    this.o = o;
    this.file = o.file;
    this.io = o.io ?? { write: writeAtomic };
    this.now = o.now ?? (() => performance.now());
  }

  /** Reads the file (setting a corrupt one aside) and writes it back, to know it can. */
  async open(): Promise<void> {
    const { file, hooks } = this.o;
    let text: string | null = null;
    try {
      text = await readFile(file, 'utf8');
    } catch (err: any) {
      if (err.code !== 'ENOENT') throw new Error(`--state ${file} cannot be read: ${err.message}`);
    }
    await unlink(file + '.tmp').catch(() => {}); // a write a crash cut short: FILE is whole
    let found = 0;
    if (text !== null) {
      const state = this.parse(text);
      if (typeof state === 'string') {
        const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(2).toString('hex')}`;
        await rename(file, aside);
        hooks.event('error', 'state_corrupt', {
          file,
          set_aside: aside,
          error: state,
          fix: `the server starts with no recorded leases: clients get their old address back if it is free. To keep the old leases, stop the server, repair ${aside} (or restore a backup) as ${file}, and start it again`,
        });
      } else {
        for (const [a, rec] of state) {
          this.pool.take(a, true);
          this.put(a, { ...rec, holder: 0 });
        }
        found = state.size;
      }
    }
    this.kept = found;
    if (found) {
      this.keptUntil = this.now() + this.o.keepMs;
      this.keptTimer = setTimeout(() => this.expire(), this.o.keepMs + 1);
      this.keptTimer.unref();
    }
    this.opened = true;
    if (!(await this.persist())) {
      this.stop();
      throw new Error(`--state ${file} cannot be written: ${this.failure}`);
    }
    hooks.event('info', 'state_loaded', { file, leases: found, kept_for_s: found ? this.o.keepMs / 1000 : undefined });
  }

  /** The server stops: what is recorded now stays, for the clients to take back after the restart. */
  async close(): Promise<void> {
    if (this.keptTimer) clearTimeout(this.keptTimer);
    const last = this.opened && (this.dirty || this.timer || this.writing) ? this.persist() : Promise.resolve(true);
    this.frozen = true;
    await last;
    this.stop();
  }

  /** Nothing more is written. */
  private stop(): void {
    this.frozen = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  allocate(wanted: number, owner: boolean, holder: number, claim?: LeaseClaim): Allocation | Promise<Allocation> {
    if (this.frozen) return 'unavailable';
    this.expire();
    let a = wanted;
    let before: Held | undefined;
    if (wanted === 0) {
      a = this.pool.allocate();
      if (a === 0) return 'exhausted';
    } else if ((before = this.leases.get(wanted))) {
      // Kept from before the start: only its client takes it back.
      if (before.holder !== 0 || !mayReclaim(before, presentedOf(claim), true)) return 'in_use';
      this.kept--;
    } else if (!this.pool.take(wanted, owner)) return 'in_use';
    this.put(a, { ...recordOf(claim), holder });
    return this.persist().then((ok) => {
      if (ok) return a;
      // Not on the disk: as if never granted.
      if (this.leases.get(a)?.holder === holder) {
        if (before) {
          this.put(a, before);
          this.kept++;
        } else {
          this.drop(a);
          this.pool.release(a);
        }
      }
      return 'unavailable';
    });
  }

  release(address: number, holder: number): void {
    const rec = this.leases.get(address);
    if (rec === undefined || rec.holder !== holder || this.frozen) return;
    this.drop(address);
    this.pool.release(address);
    this.schedule();
  }

  unavailableDetail(): string {
    return this.frozen ? 'the server is stopping' : `the lease could not be written to the state file: ${this.failure ?? 'write failed'}`;
  }

  health(): LeaseStoreHealth {
    return {
      kind: 'file',
      reachable: this.failure === null,
      held: this.leases.size - this.kept,
      elsewhere: this.kept,
      routes: 0,
      detail: {
        file: this.file,
        kept_until_back: this.kept,
        kept_for_s: this.kept ? Math.max(0, Math.ceil((this.keptUntil - this.now()) / 1000)) : 0,
        writes: this.writes,
        write_failures: this.writeFailures,
        last_error: this.failure ?? undefined,
      },
    };
  }

  records(): LeaseInfo[] {
    return [...this.leases].map(([a, r]) => ({ address: formatIPv4(a), client: r.client, here: r.holder !== 0 }));
  }

  // ---- internals ----

  private put(a: number, rec: Held): void {
    this.leases.set(a, rec);
    this.lines.set(a, `${JSON.stringify(formatIPv4(a))}: ${JSON.stringify({ client: rec.client, proven: rec.proven, token: rec.token, since: rec.since })}`);
  }

  private drop(a: number): void {
    this.leases.delete(a);
    this.lines.delete(a);
  }

  /** Leases kept from before the start whose client did not come back in time are free again. */
  private expire(): void {
    if (this.kept === 0 || this.now() < this.keptUntil) return;
    const gone: string[] = [];
    for (const [a, rec] of this.leases) {
      if (rec.holder !== 0) continue;
      this.drop(a);
      this.pool.release(a);
      gone.push(formatIPv4(a));
    }
    this.kept = 0;
    this.o.hooks.event('info', 'state_leases_expired', { count: gone.length, addresses: gone.slice(0, 20).join(',') + (gone.length > 20 ? ',...' : '') });
    this.schedule();
  }

  /** Resolves true once a write holding the state as it is now is on the disk, false if that write failed. */
  private persist(): Promise<boolean> {
    if (this.frozen) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.schedule();
    });
  }

  private schedule(delay = COALESCE_MS): void {
    if (this.frozen) return;
    this.dirty = true;
    // A change waits for no retry: it is tried again at once.
    if (this.timer !== null && this.retrying && delay === COALESCE_MS) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.timer !== null || this.writing) return;
    this.retrying = delay === RETRY_MS;
    this.timer = setTimeout(() => void this.flush(), delay);
    // A write waited for keeps the process alive; a retry alone does not.
    if (this.retrying) this.timer.unref();
  }

  private async flush(): Promise<void> {
    this.timer = null;
    this.dirty = false;
    const waiters = this.waiters;
    this.waiters = [];
    this.writing = true;
    let ok = true;
    try {
      await this.io.write(this.file, this.text());
      this.writes++;
      if (this.failure !== null) this.o.hooks.event('info', 'state_written', { file: this.file, detail: 'writing works again' });
      this.failure = null;
    } catch (err: any) {
      ok = false;
      this.writeFailures++;
      const again = this.failure === err.message;
      this.failure = err.message;
      if (!again) this.o.hooks.event('error', 'state_write_failed', { file: this.file, error: err.message, consequence: 'assignments are refused (lease_unavailable) until a write succeeds' });
    }
    this.writing = false;
    for (const w of waiters) w(ok);
    // What changed meanwhile goes next; after a failure the file is behind: try again.
    if (this.dirty) this.schedule();
    else if (!ok) this.schedule(RETRY_MS);
  }

  private text(): string {
    const c = this.o;
    const head = JSON.stringify({ format: FORMAT, subnet: `${formatIPv4(c.network)}/${c.prefix}`, written: new Date().toISOString() });
    const body = [...this.lines.values()].join(',\n');
    return `${head.slice(0, -1)},"leases":{${body ? '\n' + body + '\n' : ''}}}\n`;
  }

  /** The leases of a state file, or why it is not one. Leases this subnet cannot hold are logged and left out. */
  private parse(text: string): Map<number, LeaseRecord> | string {
    let json: any;
    try {
      json = JSON.parse(text);
    } catch (err: any) {
      return `not JSON (${err.message})`;
    }
    if (typeof json !== 'object' || json === null || json.format !== FORMAT) return `not a state file of this version (no "format": "${FORMAT}")`;
    if (typeof json.leases !== 'object' || json.leases === null || Array.isArray(json.leases)) return '"leases" is not an object';
    const out = new Map<number, LeaseRecord>();
    const left: string[] = [];
    for (const [k, v] of Object.entries(json.leases)) {
      const a = parseIPv4(k);
      const rec = parseRecord(v);
      if (a < 0) return `lease "${k}": not an IPv4 address`;
      if (typeof rec === 'string') return `lease ${k}: ${rec}`;
      if (this.assignable(a)) out.set(a, rec);
      else left.push(k);
    }
    if (left.length)
      this.o.hooks.event('warn', 'state_leases_left_out', {
        file: this.o.file,
        addresses: left.join(','),
        detail: `outside the subnet ${formatIPv4(this.o.network)}/${this.o.prefix} or reserved (the file was written with --subnet ${json.subnet}): not restored`,
      });
    return out;
  }
}
