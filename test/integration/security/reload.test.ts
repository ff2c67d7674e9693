// Reloading the auth file (server.reload(), and SIGHUP to the CLI): sessions whose
// credentials no longer hold are closed with reason credentials_revoked, the others go on
// passing traffic; a bad file changes nothing; fixed addresses follow the file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIND_REFUSAL, KIND_REPLY, REFUSE_AUTH_FAILED, REFUSE_NOT_ALLOWED, credentials, extKind, readRefusal } from '../../../protocol/index.js';
import { ConfigError } from '../../../server/src/config/config.js';
import { type Harness, RawClient, SdkPeer, equalBytes, ip, ipPacket, rng, sleep, waitFor, withServer } from '../../support/server-net.js';
import { CliServer } from '../../support/server-cli.js';
import { type TestClient, authText, credsOf, memoryLogger, newSecret, rawRequest, replyAddress, writeAuth } from '../../support/security-kit.js';

let tmp = '';
let n = 0;
test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'svpn-sec-reload-'));
});
test.after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

const mk = (id: string, address?: string): TestClient => ({ id, secret: newSecret(), address });

/** a -> b delivers, byte for byte. */
async function passes(a: SdkPeer, b: SdkPeer, tag: number): Promise<void> {
  const p = ipPacket(a.address, b.address, 80 + tag, rng(tag));
  const before = b.packets.length;
  assert.ok(a.client.send(p), 'sent');
  await waitFor(() => b.packets.slice(before).some((x) => equalBytes(x, p)), 3000, `delivery ${tag}`);
}

async function withAuthFile(clients: TestClient[], fn: (h: Harness, path: string) => Promise<void>, opts: Parameters<typeof withServer>[0] = {}) {
  const path = join(tmp, `auth-${++n}.json`);
  await writeAuth(path, clients);
  await withServer({ subnet: '10.6.0.0/24', auth: path, ...opts }, (h) => fn(h, path));
}

test('reload(): removed, re-keyed and re-addressed clients are disconnected (credentials_revoked); the others keep passing traffic', async () => {
  const alice = mk('alice');
  const bob = mk('bob');
  const carol = mk('carol', '10.6.0.10');
  const dave = mk('dave', '10.6.0.11');
  const erin = mk('erin');
  const logger = memoryLogger();
  await withAuthFile(
    [alice, bob, carol, dave, erin],
    async (h, path) => {
      const peers: Record<string, SdkPeer> = {};
      for (const c of [alice, bob, carol, dave, erin]) {
        peers[c.id] = h.sdk({ credentials: credsOf(c) });
        await peers[c.id].ready();
      }
      assert.is(peers.carol.state.address, '10.6.0.10');
      assert.is(peers.dave.state.address, '10.6.0.11');
      await passes(peers.dave, peers.erin, 1);
      const disconnects: any[] = [];
      h.server.on('disconnect', (e) => disconnects.push(e));
      const bob2 = { ...bob, secret: newSecret() };
      const carol2 = { ...carol, address: '10.6.0.12' };
      await writeAuth(path, [bob2, carol2, dave, erin]); // alice removed
      await h.server.reload();
      await waitFor(() => disconnects.length >= 3, 3000, 'three disconnects', () => disconnects);
      const revoked = disconnects.filter((d) => d.reason === 'credentials_revoked').map((d) => d.address).sort();
      assert.equal(revoked, [peers.alice.state.address, peers.bob.state.address, '10.6.0.10'].sort());
      for (const d of disconnects) assert.match(d.detail, /auth file/);
      assert.is(h.metrics.disconnects.credentials_revoked, 3);
      const reloaded = logger.find('reloaded');
      assert.is(reloaded.length, 1);
      assert.is(reloaded[0].fields.revoked_sessions, 3);
      assert.is(reloaded[0].fields.auth_clients, 4);
      for (const id of ['alice', 'bob', 'carol']) await peers[id].waitState('down');
      // dave and erin never noticed.
      await sleep(50);
      assert.is(disconnects.length, 3);
      for (const id of ['dave', 'erin']) {
        assert.is(peers[id].state.state, 'ready', id);
        assert.is(peers[id].states.filter((s) => s.state === 'down').length, 0, id);
      }
      await passes(peers.dave, peers.erin, 2);
      await passes(peers.erin, peers.dave, 3);
      assert.is(h.sessions, 2);
      assert.is(h.pool.size, 2);
      // The new file holds: bob's new secret works, his old one does not; carol has her new address; alice is gone.
      assert.ok((await h.sdk({ credentials: credsOf(bob2) }).ready()).address);
      assert.is((await h.sdk({ credentials: credsOf(bob) }).start().waitState('down')).code, REFUSE_AUTH_FAILED);
      assert.is((await h.sdk({ credentials: credsOf(alice) }).start().waitState('down')).code, REFUSE_AUTH_FAILED);
      assert.is((await h.sdk({ credentials: credsOf(carol2) }).ready()).address, '10.6.0.12');
    },
    { logger },
  );
});

test('reload() with an identical file closes nothing', async () => {
  const a = mk('a');
  const b = mk('b', '10.6.0.20');
  await withAuthFile([a, b], async (h, path) => {
    const pa = h.sdk({ credentials: credsOf(a) });
    const pb = h.sdk({ credentials: credsOf(b) });
    await pa.ready();
    await pb.ready();
    writeFileSync(path, await authText([b, a])); // reordered, same entries
    await h.server.reload();
    await sleep(50);
    assert.is(h.sessions, 2);
    assert.is(h.metrics.disconnects.credentials_revoked ?? 0, 0);
    await passes(pa, pb, 4);
  });
});

test('a bad file at reload rejects, logs reload_failed, and changes nothing: sessions intact, old credentials still accepted', async () => {
  const a = mk('a');
  const b = mk('b', '10.6.0.30');
  const logger = memoryLogger();
  await withAuthFile(
    [a, b],
    async (h, path) => {
      const pa = h.sdk({ credentials: credsOf(a) });
      const pb = h.sdk({ credentials: credsOf(b) });
      await pa.ready();
      await pb.ready();
      const newcomer = mk('newcomer');
      const bads: Array<[string, string, RegExp]> = [
        ['bad JSON', '{"clients": [', /not valid JSON/],
        ['plaintext secret', JSON.stringify({ clients: [{ id: 'a', secret: 'plain-text-secret' }] }), /clients\[0\] \(id "a"\).*never the secret itself/],
        ['duplicate id', (await authText([a, newcomer])).replace('"newcomer"', '"a"'), /clients\[1\] \(id "a"\): id "a" appears twice/],
        ['fixed twice', await authText([{ ...a, address: '10.6.0.30' }, b, newcomer]), /clients\[1\] \(id "b"\): address 10\.6\.0\.30 is already fixed for "a"/],
        ['address outside', await authText([a, b, { ...newcomer, address: '10.9.9.9' }]), /clients\[2\] \(id "newcomer"\): address 10\.9\.9\.9 is outside the subnet/],
      ];
      for (const [name, text, re] of bads) {
        writeFileSync(path, text);
        const before = logger.find('reload_failed').length;
        await h.server.reload().then(
          () => assert.unreachable(`${name}: reload() resolved`),
          (err) => {
            assert.instance(err, ConfigError, name);
            assert.match(err.message, re, name);
            assert.match(err.message, /^--auth /, name);
          },
        );
        const failed = logger.find('reload_failed');
        assert.is(failed.length, before + 1, name);
        assert.is(failed.at(-1)!.level, 'error');
        assert.match(failed.at(-1)!.fields.error, re, name);
        assert.match(failed.at(-1)!.fields.detail, /previous/);
      }
      rmSync(path);
      await h.server.reload().then(
        () => assert.unreachable('reload() of a missing file resolved'),
        (err) => assert.match(err.message, /no such file/),
      );
      assert.is(logger.find('reloaded').length, 0);
      // Nothing changed.
      assert.is(h.sessions, 2);
      assert.is(h.metrics.disconnects.credentials_revoked ?? 0, 0);
      await passes(pa, pb, 5);
      assert.is((await h.sdk({ credentials: credsOf(a) }).ready()).state, 'ready', 'old credentials still accepted');
      assert.is((await h.sdk({ credentials: credsOf(newcomer) }).start().waitState('down')).code, REFUSE_AUTH_FAILED, 'the bad file is not half-applied');
      // b's fixed address is still kept for b.
      const c = await h.raw();
      pb.close();
      await waitFor(() => h.sessionAt(ip('10.6.0.30')) === undefined, 3000, "b's session to end");
      const f = await rawRequest(c, ip('10.6.0.30'), credentials(a.id, a.secret));
      assert.is(readRefusal(f!).code, REFUSE_NOT_ALLOWED);
    },
    { logger },
  );
});

test('a fixed address removed from the file becomes available to other clients', async () => {
  const owner = mk('owner', '10.6.0.5');
  const other = mk('other');
  // /29: .2-.6 assignable.
  await withAuthFile(
    [owner, other],
    async (h, path) => {
      const c1 = await h.raw();
      const r1 = await rawRequest(c1, ip('10.6.0.5'), credentials(other.id, other.secret));
      assert.is(extKind(r1!), KIND_REFUSAL);
      assert.is(readRefusal(r1!).code, REFUSE_NOT_ALLOWED, 'kept for its owner before the reload');
      assert.is(h.pool.free, 4, '.2 .3 .4 .6');
      await writeAuth(path, [{ ...owner, address: undefined }, other]);
      await h.server.reload();
      assert.is(h.pool.free, 5, 'back in general use');
      const c2 = await h.raw();
      const r2 = await rawRequest(c2, ip('10.6.0.5'), credentials(other.id, other.secret));
      assert.is(extKind(r2!), KIND_REPLY);
      assert.is(replyAddress(r2!), ip('10.6.0.5'));
      c2.destroy();
      await waitFor(() => h.pool.size === 0, 3000, 'the address to be released');
      // And dynamic allocation may now hand it out.
      const got: string[] = [];
      for (let i = 0; i < 5; i++) got.push((await h.sdk({ credentials: credsOf(other) }).ready()).address!);
      assert.ok(got.includes('10.6.0.5'), JSON.stringify(got));
    },
    { subnet: '10.6.0.0/29' },
  );
});

test('a fixed address added at reload is kept for its owner from then on', async () => {
  const owner = mk('owner');
  const other = mk('other');
  await withAuthFile([owner, other], async (h, path) => {
    await writeAuth(path, [{ ...owner, address: '10.6.0.77' }, other]);
    await h.server.reload();
    const c = await h.raw();
    const r = await rawRequest(c, ip('10.6.0.77'), credentials(other.id, other.secret));
    assert.is(readRefusal(r!).code, REFUSE_NOT_ALLOWED);
    assert.is((await h.sdk({ credentials: credsOf(owner) }).ready()).address, '10.6.0.77');
  });
});

// ---- the CLI: SIGHUP --------------------------------------------------------------------------

test('CLI: SIGHUP revokes a removed client; SIGHUP with a broken file keeps the process up and logs reload_failed', async () => {
  const keep = mk('keep');
  const drop = mk('drop');
  const path = join(tmp, `cli-${++n}.json`);
  await writeAuth(path, [keep, drop]);
  const s = new CliServer(['--log-format', 'json', '--no-tun', '--host', '127.0.0.1', '--port', '0', '--subnet', '10.6.0.0/24', '--auth', path]);
  const peers: SdkPeer[] = [];
  try {
    const port = await s.port();
    await s.event('plain_credentials');
    const pk = new SdkPeer(port, { credentials: credsOf(keep) });
    const pd = new SdkPeer(port, { credentials: credsOf(drop) });
    const pk2 = new SdkPeer(port, { credentials: credsOf(keep) });
    peers.push(pk, pd, pk2);
    await pk.ready();
    const pdAddr = (await pd.ready()).address;
    await pk2.ready();
    await writeAuth(path, [keep]);
    s.signal('SIGHUP');
    const d = await s.event('disconnect', 5000, (e) => e.reason === 'credentials_revoked');
    assert.is(d.address, pdAddr);
    const ok = await s.event('reloaded');
    assert.is(ok.revoked_sessions, 1);
    await pd.waitState('down');
    await passes(pk, pk2, 6);
    // A broken file: logged, nothing changes, the process stays up.
    writeFileSync(path, '{"clients": [ {"id": "keep", "secret": "in clear"} ] }');
    const from = s.events.length;
    s.signal('SIGHUP');
    const failed = await s.event('reload_failed', 5000, () => true, from);
    assert.is(failed.level, 'error');
    assert.match(failed.error, /clients\[0\] \(id "keep"\)/);
    await sleep(200);
    assert.is(s.exit, null, 'still running after a bad SIGHUP');
    assert.is(pk.state.state, 'ready');
    await passes(pk2, pk, 7);
    const again = new SdkPeer(port, { credentials: credsOf(keep) });
    peers.push(again);
    await again.ready();
    // Raw probe: the plain listener still answers.
    const raw = await RawClient.connect(port);
    try {
      const r = await rawRequest(raw, 0, credentials(drop.id, drop.secret));
      assert.is(readRefusal(r!).code, REFUSE_AUTH_FAILED);
    } finally {
      raw.destroy();
    }
    assert.equal(await s.stop('SIGTERM'), { code: 0, signal: null });
  } finally {
    for (const p of peers) p.close();
    s.kill();
  }
});

test.run();
