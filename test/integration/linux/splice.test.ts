// The tun device's attached socket (linux/native/splice.c) through the binding, on a real
// tun device in a network namespace made for this run (fixtures/splice-ns.ts): framing across
// reads and from the bytes JS held, keepalive echoes, signs of life and bad bytes handed to JS, batches from
// the tun framed onto the socket, backpressure without loss, sendRaw() never interleaving,
// end of stream, and nothing leaked. Needs root, /dev/net/tun, iproute2 and the built addon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { KEEPALIVE } from '../../../protocol/index.js';
import { e2eUnavailable } from '../../support/lab.js';
import { runInNamespace } from '../../support/ns-sockets.js';

const FIXTURE = fileURLToPath(new URL('../../support/fixtures/splice-ns.js', import.meta.url));
const why = e2eUnavailable();

if (why) {
  console.log(`splice.test: SKIPPING (not registered): ${why}`);
  test.skip('the attached socket', () => {});
} else {
  test('the attached socket moves frames both ways in C and hands JS what is not data', () => {
    const { status, output, result: res } = runInNamespace('svs', FIXTURE);
    assert.is(status, 0, `fixture exited with ${status}: ${output}`);
    assert.ok(res, `no RESULT: ${output}`);
    const ka = Buffer.from(KEEPALIVE).toString('hex');
    assert.equal(res.fromSocket.got, ['zero', 'one', 'two'], 'datagrams from frames split anywhere, the first begun before attach');
    assert.equal(res.fromSocket.events, ['data'], 'the keepalive echo, and nothing else, to JS');
    assert.equal(res.fromSocket.control, [ka]);
    assert.ok(res.fromSocket.activity >= 1, 'packets came: said (at most once a second)');
    assert.equal(res.toSocket, { count: 100, inOrder: true, jsReads: 0 }, 'tun reads framed onto the socket in C, none in JS');
    assert.is(res.sendRaw, 20);
    assert.ok(res.backpressure.socketFull > 0, `the socket filled: ${JSON.stringify(res.backpressure)}`);
    assert.ok(res.backpressure.markerWhole, 'sendRaw() bytes arrive whole among the queued frames');
    assert.ok(res.sendRawWhileFull === 0 || res.sendRawWhileFull === 34, `sendRaw() takes all or nothing: ${res.sendRawWhileFull}`);
    assert.equal(res.badFrame, { events: ['data'], bytes: '00010203' }, 'bytes that are no frame go to JS as they are');
    assert.is(res.attachTwice, 'EBUSY');
    assert.equal(res.end, ['end']);
    assert.is(res.stats.attaches, 2);
    assert.is(res.stats.rxPackets, 3);
    assert.is(res.stats.rxControl, 1);
    assert.ok(res.stats.txPackets >= 100);
    assert.is(res.fds.after, res.fds.before, 'no descriptor left behind');
  });
}

test.run();
