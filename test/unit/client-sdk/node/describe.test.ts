// describeDown (client-sdk/node/describe.ts): the one line simplevpn-client logs for a
// 'down' state, from the SDK's code and detail.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeDown } from '../../../../client-sdk/node/describe.js';
import type { DownInfo, DownReason } from '../../../../client-sdk/src/client.js';

const down = (reason: DownReason, detail = '', code = 0): DownInfo => ({ state: 'down', reason, detail, code, retryIn: 1000 });

test('each reason in words, with the detail where it carries one and the timeout where it counts', () => {
  const cases: Array<[DownInfo, number | undefined, string]> = [
    [down('refused', 'address 10.0.0.1 is reserved', 2), undefined, 'refused by server: address 10.0.0.1 is reserved'],
    [down('refused', 'code 9', 9), undefined, 'refused by server: code 9'],
    [down('refused', '', 1), undefined, 'connection closed during the address request (a seed server refuses so)'],
    [down('closed', 'end of stream'), undefined, 'connection closed: end of stream'],
    [down('closed'), undefined, 'connection closed'],
    [down('protocol_error', 'IP version is neither 4 nor 6'), undefined, 'protocol error from server: IP version is neither 4 nor 6'],
    [down('connect_timeout'), 3, 'could not connect within 3 s'],
    [down('request_timeout'), undefined, 'no reply to the address request within 10 s'],
    [down('keepalive_timeout'), 2.5, 'no answer to keepalive within 2.5 s'],
    [down('expects_tls'), undefined, 'the server expects TLS on this port'],
    [down('connect_failed', 'cannot connect to 127.0.0.1:9: connection refused (ECONNREFUSED)'), undefined, 'cannot connect to 127.0.0.1:9: connection refused (ECONNREFUSED)'],
    [down('resolve_failed', 'cannot resolve x.invalid: no such host (ENOTFOUND)'), undefined, 'cannot resolve x.invalid: no such host (ENOTFOUND)'],
    [down('certificate', "the server's certificate has expired (CERT_HAS_EXPIRED)"), undefined, "the server's certificate has expired (CERT_HAS_EXPIRED)"],
    [down('not_tls'), undefined, 'not_tls'],
  ];
  for (const [d, timeout, text] of cases) assert.is(describeDown(d, timeout), text, `${d.reason} ${d.detail}`);
});

test.run();
