// The server's switching hub reading and writing its tun (linux/native/hub_tun.c) through the
// binding, on a real tun device in a network namespace made for this run
// (fixtures/hub-tun-ns.ts): packets for a native session framed onto its socket in C and for
// anyone else handed to onPackets whole (offloads on too), no packet overtaking one that went
// to JS in the same batch, a session's frames written to the tun unless JS claimed their
// destination, hubTun()'s errors, useTun(null), a deleted link reported once, and nothing
// leaked. Needs root, /dev/net/tun, iproute2 and the built addon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { e2eUnavailable } from '../../support/lab.js';
import { runInNamespace } from '../../support/ns-sockets.js';

const FIXTURE = fileURLToPath(new URL('../../support/fixtures/hub-tun-ns.js', import.meta.url));
const why = e2eUnavailable();

if (why) {
  console.log(`hub-tun.test: SKIPPING (not registered): ${why}`);
  test.skip("the hub's tun", () => {});
} else {
  test("the hub reads and writes the server's tun in C and hands JS the rest, in order", () => {
    const { status, output, result: res } = runInNamespace('svh', FIXTURE);
    assert.is(status, 0, `fixture exited with ${status}: ${output}`);
    assert.ok(res, `no RESULT: ${output}`);
    const none = { rx: 0, tx: 0, full: 0, rejected: 0 };

    assert.equal(res.toSession, { exact: true, frames: 3, js: 0, counts: { ...none, rx: 3 } }, "a native session's packets: framed byte for byte, none in JS, counted");
    assert.equal(res.toJs, { exact: true, rx: 0 }, 'packets for an address no native session holds (claimed or not) reach onPackets whole');
    assert.ok(res.offload.on, 'the kernel took the offloads');
    assert.equal(res.offload, { on: true, toSession: true, toJs: true, counts: { ...none, rx: 1 } }, 'with offloads: the vnet header stripped, checksums completed, both ways out');

    assert.ok(res.ordering.oneBatch, `the three packets for E in one read: ${JSON.stringify(res.ordering)}`);
    assert.equal(res.ordering.jsOrder, ['big', 'a', 'b'], 'the small packets follow the one E cannot take into JS, in order');
    assert.is(res.ordering.atE, 0, 'none overtook it on the native path');

    const s = res.fromSession;
    assert.equal(s.toTun.got, ['10.78.0.2:7000 to the tun'], "a session's frame for the server's own address, through the tun");
    assert.is(s.toTun.devRx, 1);
    assert.equal(s.toTun.counts, { ...none, tx: 1 });
    assert.equal(s.claimed.events, [{ kind: 0, slot: 0, bytes: 'claimed' }], "a claimed destination's frame goes to the hub's JS event");
    assert.is(s.claimed.devRx, 0, 'and never to the tun');
    assert.equal(s.claimed.counts, none);
    assert.equal(s.released, { events: 0, counts: { ...none, tx: 1 } }, 'released, the tun takes it again');

    assert.equal(
      res.errors,
      {
        closed: 'Error:EBADF',
        spliced: 'Error:EBUSY',
        notDevice: 'Error:',
        notDeviceNative: 'TypeError:ERR_INVALID_ARG_TYPE',
        attachWhileInHub: 'TunError:EBUSY',
      },
      "hubTun()'s errors name their cause; a device the hub reads is no socket's",
    );
    assert.equal(res.released, { js: true, atD: 0 }, 'useTun(null): the reads are JS again, a native session address too');
    assert.equal(res.deleted.errors.length, 1, `the deleted device reported once: ${JSON.stringify(res.deleted.errors)}`);
    assert.is(res.deleted.toJs, 1, "the hub stopped using it: a session's frame for it reaches JS");
    assert.equal(res.deleted.counts, none);
    assert.is(res.deleted.again, 'Error:EIO', 'a failed device is refused');
    assert.is(res.fds.after, res.fds.before, 'the device closed under the hub, then the hub: no descriptor left behind');
  });
}

test.run();
