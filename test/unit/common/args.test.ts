// The command-line checks both CLIs share (common/args.ts): unknown options, negative
// numbers as values, values present and not repeated, flag files, log options, tun names,
// and the usage line itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import mri from 'mri';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkValues, logOptions, negativeValues, readFlagFile, tunNameProblem, unknownOption, usageFor } from '../../../common/args.js';

/** A usage() that throws the message instead of exiting. */
const usage = (msg: string): never => {
  throw new Error(msg);
};
/** The message `fn` ends in bad usage with, or null when it returns. */
function refused(fn: () => unknown): string | null {
  try {
    fn();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const STRINGS = ['port', 'mtu', 'host', 'route', 'tun'];
const parse = (argv: string[]) => mri(argv, { alias: { p: 'port', h: 'help' }, boolean: ['help', 'tls'], string: STRINGS });

test('unknownOption names the first unknown flag as typed, or null', () => {
  const known = [...STRINGS, 'help', 'tls', 'p', 'h'];
  assert.is(unknownOption(parse(['--port', '1', '--tls']), known, ['--port', '1', '--tls']), null);
  assert.is(unknownOption(parse(['--frob']), known, ['--frob']), '--frob');
  assert.is(unknownOption(parse(['--no-frob']), known, ['--no-frob']), '--no-frob');
  assert.is(unknownOption(parse(['--frob=1']), known, ['--frob=1']), '--frob');
  assert.is(unknownOption(parse(['-x']), known, ['-x']), '-x');
});

test('negativeValues gives a negative number back to the flag before it, in the flag and its alias', () => {
  for (const argv of [
    ['--port', '-1'],
    ['-p', '-1'],
  ]) {
    const args = parse(argv);
    negativeValues(args, argv);
    assert.is(args.port, '-1', argv.join(' '));
    assert.is(args.p, '-1', argv.join(' '));
    assert.not.ok('1' in args, 'no stray flag -1');
  }
  const args = parse(['--mtu', '-5.5']);
  assert.is(unknownOption(args, [...STRINGS, 'help', 'tls', 'p', 'h'], ['--mtu', '-5.5']), null);
  assert.is(args.mtu, '-5.5');
  // After a flag that takes no value, the number stays a stray option.
  const b = parse(['--tls', '-1']);
  assert.is(unknownOption(b, [...STRINGS, 'help', 'tls', 'p', 'h'], ['--tls', '-1']), '-1');
});

test('checkValues: a flag left without its value, and a flag given twice unless repeatable', () => {
  assert.is(refused(() => checkValues(usage, parse(['--port', '1', '--mtu', '9000']), STRINGS)), null);
  assert.is(refused(() => checkValues(usage, parse(['--port']), STRINGS)), '--port needs a value');
  assert.is(refused(() => checkValues(usage, parse(['--port', '--tls']), STRINGS)), '--port needs a value');
  assert.is(refused(() => checkValues(usage, parse(['--mtu', '1', '--mtu', '2']), STRINGS)), '--mtu given more than once');
  assert.is(refused(() => checkValues(usage, parse(['--route', 'a', '--route', 'b']), STRINGS, ['route'])), null);
  assert.is(refused(() => checkValues(usage, parse(['--route', 'a', '--route']), STRINGS, ['route'])), '--route needs a value');
});

test('readFlagFile: the bytes, or "cannot read --FLAG PATH" and why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'svpn-args-'));
  try {
    writeFileSync(join(dir, 'secret'), 'abc\n');
    assert.is(readFlagFile(usage, 'secret-file', join(dir, 'secret')).toString(), 'abc\n');
    assert.is(refused(() => readFlagFile(usage, 'ca', join(dir, 'nope.pem'))), `cannot read --ca ${join(dir, 'nope.pem')}: no such file`);
    assert.match(refused(() => readFlagFile(usage, 'ca', dir))!, new RegExp(`^cannot read --ca ${dir}: EISDIR`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('logOptions: text and info by default; anything else named with what is allowed', () => {
  assert.equal(logOptions(usage), { format: 'text', level: 'info' });
  assert.equal(logOptions(usage, 'json', 'debug'), { format: 'json', level: 'debug' });
  assert.is(refused(() => logOptions(usage, 'xml')), '--log-format must be text or json, got "xml"');
  assert.is(refused(() => logOptions(usage, 'text', 'loud')), '--log-level must be debug, info, warn or error, got "loud"');
});

test('tunNameProblem: 1 to 15 characters, no space, slash or colon; a %d pattern is a name', () => {
  for (const ok of ['svpn%d', 'tun0', 'a', 'x'.repeat(15)]) assert.is(tunNameProblem(ok), null, ok);
  for (const bad of ['', 'x'.repeat(16), 'a b', 'a/b', 'a:1', 'tab\there', 7]) {
    assert.is(tunNameProblem(bad), `--tun must be a device name of 1 to 15 characters without spaces, '/' or ':', got "${bad}"`, String(bad));
  }
});

test('usageFor: "PROGRAM: message" and the Try line on stderr, then exit status 2', () => {
  const written: string[] = [];
  const write = process.stderr.write;
  const exit = process.exit;
  let status: number | undefined;
  process.stderr.write = ((s: string) => written.push(s) > 0) as typeof process.stderr.write;
  process.exit = ((code?: number) => {
    status = code;
    throw new Error('exit');
  }) as typeof process.exit;
  try {
    assert.throws(() => usageFor('simplevpn-x')('--mtu must be a number'), /exit/);
  } finally {
    process.stderr.write = write;
    process.exit = exit;
  }
  assert.is(status, 2);
  assert.equal(written, ["simplevpn-x: --mtu must be a number\nTry 'simplevpn-x --help' for the options.\n"]);
});

test.run();
