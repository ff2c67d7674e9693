// simplevpn-client's IPv6 flags (linux/client/args.ts): asking for IPv6 by default,
// --address6, --no-ipv6, and a server given by an IPv6 address, bracketed or not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatIPv6 } from '../../../../protocol/index.js';
import { type ClientSettings, parseClientArgs } from '../../../../linux/client/args.js';

const usage = (msg: string): never => {
  throw new Error(msg);
};
const parse = (argv: string[]) => parseClientArgs(argv, {}, usage) as ClientSettings;
const refused = (argv: string[]): string => {
  try {
    parseClientArgs(argv, {}, usage);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('accepted: ' + argv.join(' '));
};

test('IPv6 is asked for by default (any address); --address6 asks for one; --no-ipv6 and --seed do not ask', () => {
  assert.is(parse(['-s', 'h']).ipv6!.length, 0);
  assert.is(formatIPv6(parse(['-s', 'h', '--address6', 'fd00:5:6:0:1::7']).ipv6!), 'fd00:5:6:0:1::7');
  assert.is(parse(['-s', 'h', '--no-ipv6']).ipv6, undefined);
  assert.is(parse(['-s', 'h', '--seed']).ipv6, undefined);
});

test('bad IPv6 flags are refused with the reason', () => {
  assert.match(refused(['-s', 'h', '--address6', '10.0.0.1']), /--address6 must be an IPv6 address, got "10.0.0.1"/);
  assert.match(refused(['-s', 'h', '--address6', 'fd00::7', '--no-ipv6']), /--address6 and --no-ipv6 disagree/);
  assert.match(refused(['-s', 'h', '--address6', 'fd00::7', '--seed']), /--address6 and --seed disagree/);
  assert.match(refused(['-s', 'h', '--ipv6']), /--ipv6 is the default/);
});

test('a server by IPv6 address, bare or in brackets, is dialled as the address and logged as [ADDR]:PORT', () => {
  for (const s of ['fd00::1', '[fd00::1]']) {
    const o = parse(['-s', s]);
    assert.is(o.host, 'fd00::1');
    assert.is(o.server, '[fd00::1]:2002');
  }
  assert.is(parse(['-s', 'tcp://[fd00::1]:2010']).host, 'fd00::1');
  assert.is(parse(['-s', 'tcp://[fd00::1]:2010']).port, 2010);
});

test.run();
