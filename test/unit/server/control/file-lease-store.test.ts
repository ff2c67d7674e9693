// The state file store (--state): leases that survive a restart or a crash, written whole and
// atomically, batched, acknowledged only once on the disk; a corrupt file set aside, never
// dropped. Files in a temporary directory of the test's own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatIPv4, parseIPv4 } from '../../../../protocol/index.js';
import { FileLeaseStore, type StateIo, writeAtomic } from '../../../../server/src/control/file-lease-store.js';
import type { LeaseClaim } from '../../../../server/src/control/lease-store.js';

const ip = (s: string) => parseIPv4(s);
const bytes = (s: string) => Buffer.from(s.padEnd(16, '.'));
function claim(token: string | null, presented: string | null = null, client = '', proven = false): LeaseClaim {
  return { token: token && bytes(token).toString('base64url'), client, proven, presented: presented ? bytes(presented) : null };
}

let dir = '';
test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'svpn-state-'));
});
test.after.each(() => {
  rmSync(dir, { recursive: true, force: true });
});

function store(file = join(dir, 'leases.json'), o: { io?: StateIo; now?: () => number; keepMs?: number } = {}) {
  const events: Array<{ level: string; name: string; fields: Record<string, unknown> }> = [];
  const s = new FileLeaseStore({
    file,
    network: ip('10.7.0.0'),
    prefix: 24,
    reserved: [ip('10.7.0.1')],
    keepMs: o.keepMs ?? 60_000,
    hooks: { evict: () => {}, event: (level, name, fields) => events.push({ level, name, fields }) },
    io: o.io,
    now: o.now,
  });
  return { s, events, file };
}

const onDisk = (file: string) => JSON.parse(readFileSync(file, 'utf8'));

test('a first start writes an empty state file; an assignment is answered once it is in the file', async () => {
  const { s, file } = store();
  await s.open();
  assert.equal(onDisk(file).leases, {});
  const got = s.allocate(0, false, 1, claim('t1', null, 'sensor-1'));
  assert.instance(got, Promise, 'answered once written');
  const a = (await got) as number;
  assert.is(a, ip('10.7.0.2'));
  const rec = onDisk(file).leases['10.7.0.2'];
  assert.is(rec.client, 'sensor-1');
  assert.is(rec.proven, false);
  assert.is.not(rec.token, bytes('t1').toString('base64url'), 'the token is not in the file, its hash is');
  assert.is(rec.token.length, 43);
});

test('after a crash (no close): every lease is back, kept for its client: the token or its proved auth id takes it back, anyone else is refused until the idle timeout', async () => {
  const first = store();
  await first.s.open();
  const X = ip('10.7.0.10');
  const Y = ip('10.7.0.11');
  const Z = ip('10.7.0.12');
  assert.is(await first.s.allocate(X, false, 1, claim('tok-x')), X);
  assert.is(await first.s.allocate(Y, false, 2, claim('tok-y', null, 'dev-y', true)), Y);
  assert.is(await first.s.allocate(Z, false, 3, claim(null)), Z); // a seed client: no token
  // The process dies here: nothing more is written.
  let now = 0;
  const second = store(first.file, { now: () => now, keepMs: 30_000 });
  await second.s.open();
  assert.ok(second.events.some((e) => e.name === 'state_loaded' && e.fields.leases === 3));
  for (const a of [X, Y, Z]) assert.ok(second.s.isLeased(a), formatIPv4(a));
  assert.is(await second.s.allocate(X, false, 10, claim('new', 'wrong')), 'in_use', 'a wrong token');
  assert.is(await second.s.allocate(X, false, 11, claim('new')), 'in_use', 'no token');
  const any = [];
  for (let i = 0; i < 5; i++) any.push(await second.s.allocate(0, false, 20 + i, claim(`any${i}`)));
  assert.not.ok(any.includes(X) || any.includes(Y) || any.includes(Z), 'never handed out to another client');
  assert.is(await second.s.allocate(X, false, 12, claim('x2', 'tok-x')), X, 'its token');
  assert.is(await second.s.allocate(Y, false, 13, claim('y2', null, 'dev-y', true)), Y, 'its proved auth id');
  assert.is(await second.s.allocate(Z, false, 14, claim(null)), 'in_use', 'a seed client cannot prove it: it waits');
  now = 30_001;
  assert.is(await second.s.allocate(Z, false, 15, claim(null)), Z, 'after the idle timeout it is free');
  assert.ok(second.events.some((e) => e.name === 'state_leases_expired' && e.fields.count === 1));
});

test('assignments under load are batched: many in one write, each answered only after it', async () => {
  let release: () => void = () => {};
  const texts: string[] = [];
  const io: StateIo = {
    write: async (file, text) => {
      texts.push(text);
      if (texts.length > 1) await new Promise<void>((r) => (release = r));
      await writeAtomic(file, text);
    },
  };
  const { s } = store(undefined, { io });
  await s.open();
  let answered = 0;
  const all = [...Array(200)].map((_, i) => (s.allocate(0, false, i + 1, claim(`t${i}`)) as Promise<unknown>).then((a) => (answered++, a)));
  await new Promise((r) => setTimeout(r, 30));
  assert.is(answered, 0, 'none answered before the write is on the disk');
  assert.is(texts.length, 2, 'one write for 200 assignments (after the first one of open())');
  release();
  const got = await Promise.all(all);
  assert.is(new Set(got).size, 200);
  assert.is(Object.keys(JSON.parse(texts[1]!).leases).length, 200);
  assert.ok(s.writes <= 3);
});

test('a write that fails refuses the assignments waiting for it, leaves the file as it was, and says so once', async () => {
  let fail = false;
  const io: StateIo = { write: async (file, text) => (fail ? Promise.reject(new Error('ENOSPC: no space left on device')) : writeAtomic(file, text)) };
  const { s, file, events } = store(undefined, { io });
  await s.open();
  const before = readFileSync(file, 'utf8');
  fail = true;
  assert.is(await s.allocate(ip('10.7.0.9'), false, 1, claim('t')), 'unavailable');
  assert.is(await s.allocate(0, false, 2, claim('u')), 'unavailable');
  assert.not.ok(s.isLeased(ip('10.7.0.9')), 'as if never granted');
  assert.is(s.inUse, 0);
  assert.match(s.unavailableDetail(), /ENOSPC/);
  assert.is(readFileSync(file, 'utf8'), before);
  assert.is(events.filter((e) => e.name === 'state_write_failed').length, 1);
  assert.is(s.health().reachable, false);
  fail = false;
  assert.is(await s.allocate(ip('10.7.0.9'), false, 3, claim('v')), ip('10.7.0.9'));
  assert.ok(events.some((e) => e.name === 'state_written'));
});

test('the file is replaced whole through FILE.tmp; a FILE.tmp left by a write a crash cut short is ignored and removed', async () => {
  const file = join(dir, 'leases.json');
  const { s: a } = store(file);
  await a.open();
  assert.is(await a.allocate(ip('10.7.0.5'), false, 1, claim('t')), ip('10.7.0.5'));
  writeFileSync(file + '.tmp', '{"format": "simplevpn-leases 1", "leases": {"10.7.0.6": {'); // half a write
  const { s: b, events } = store(file);
  await b.open();
  assert.ok(b.isLeased(ip('10.7.0.5')));
  assert.not.ok(b.isLeased(ip('10.7.0.6')));
  assert.not.ok(events.some((e) => e.name === 'state_corrupt'));
  assert.equal(readdirSync(dir).sort(), ['leases.json']);
  await writeAtomic(file, 'x\n');
  assert.is(readFileSync(file, 'utf8'), 'x\n');
  assert.equal(readdirSync(dir), ['leases.json']);
});

test('a corrupt file is set aside as FILE.corrupt-<time>, logged with the way out, and the server starts with no leases', async () => {
  for (const text of ['{"format": "simplevpn-leases 1", "leases": {"10.7.0.6": {"cli', '{"leases": {}}', '{"format": "simplevpn-leases 1", "leases": {"10.7.0.6": {"client": 5}}}']) {
    const file = join(dir, 'leases.json');
    writeFileSync(file, text);
    const { s, events } = store(file);
    await s.open();
    const e = events.find((x) => x.name === 'state_corrupt');
    assert.ok(e, text);
    assert.is(e!.level, 'error');
    assert.is(e!.fields.file, file);
    assert.match(String(e!.fields.set_aside), /leases\.json\.corrupt-\d{4}-/);
    assert.match(String(e!.fields.fix), /restore/);
    assert.is(readFileSync(String(e!.fields.set_aside), 'utf8'), text, 'kept as it was');
    assert.is(s.inUse, 0);
    assert.equal(onDisk(file).leases, {}, 'a fresh state file');
    rmSync(String(e!.fields.set_aside));
  }
});

test('a lease the subnet cannot hold (the subnet changed) is logged and left out', async () => {
  const file = join(dir, 'leases.json');
  const rec = { client: '', proven: false, token: '', since: 1 };
  writeFileSync(file, JSON.stringify({ format: 'simplevpn-leases 1', subnet: '10.8.0.0/24', leases: { '10.8.0.5': rec, '10.7.0.1': rec, '10.7.0.7': rec } }));
  const { s, events } = store(file);
  await s.open();
  assert.ok(s.isLeased(ip('10.7.0.7')));
  assert.is(s.inUse, 1);
  const e = events.find((x) => x.name === 'state_leases_left_out');
  assert.is(e?.fields.addresses, '10.8.0.5,10.7.0.1');
});

test('a stop keeps the leases of the sessions it ends, for their clients to take back after the restart', async () => {
  const { s, file } = store();
  await s.open();
  assert.is(await s.allocate(ip('10.7.0.20'), false, 1, claim('t')), ip('10.7.0.20'));
  const closing = s.close();
  s.release(ip('10.7.0.20'), 1); // the server ends its sessions right after
  await closing;
  assert.ok(onDisk(file).leases['10.7.0.20']);
  assert.is(s.allocate(0, false, 2, claim('u')), 'unavailable', 'nothing more once stopping');
});

test('a state file that cannot be written stops the start, naming it', async () => {
  const { s } = store(join(dir, 'no-such-dir', 'leases.json'));
  try {
    await s.open();
    assert.unreachable('open() should fail');
  } catch (err: any) {
    assert.match(err.message, /--state .*no-such-dir\/leases\.json cannot be written: ENOENT/);
  }
  assert.not.ok(existsSync(join(dir, 'no-such-dir')));
});

test.run();
